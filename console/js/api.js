// @ts-check
/**
 * The admin API client: the bearer token from the login (kept in sessionStorage, so it ends with
 * the tab), JSON in and out, API errors as ApiError with the server's code, message and parameter.
 */

const SESSION_KEY = 'tokenwarden.session';

/** @typedef {{ token: string, name: string, role: 'admin' | 'viewer' }} Session */

export class ApiError extends Error {
  /**
   * @param {number} status
   * @param {string} code
   * @param {string} message
   * @param {string | null} [parameter]
   */
  constructor(status, code, message, parameter = null) {
    super(message);
    this.status = status;
    this.code = code;
    this.parameter = parameter;
  }

  /** The server has no such endpoint (a feature this server version does not offer). */
  get missingEndpoint() {
    return this.status === 404 && /^no endpoint at /.test(this.message);
  }
}

/** @returns {Session | null} */
export function loadSession() {
  try {
    const raw = sessionStorage.getItem(SESSION_KEY);
    if (raw === null) return null;
    const s = JSON.parse(raw);
    if (typeof s?.token === 'string' && typeof s?.name === 'string' && (s.role === 'admin' || s.role === 'viewer')) return s;
  } catch {
    // A malformed entry is treated as no session.
  }
  return null;
}

/** @param {Session | null} session */
export function saveSession(session) {
  if (session === null) sessionStorage.removeItem(SESSION_KEY);
  else sessionStorage.setItem(SESSION_KEY, JSON.stringify(session));
}

/** Called when the server answers 401 with the stored token (revoked, or the server restarted). */
let onUnauthorized = () => {};
/** @param {() => void} handler */
export function setUnauthorizedHandler(handler) {
  onUnauthorized = handler;
}

/** @param {string} token @returns {Record<string, string>} */
function authHeaders(token) {
  return token === '' ? {} : { authorization: `Bearer ${token}` };
}

/**
 * @param {Response} res
 * @returns {Promise<ApiError>}
 */
async function errorOf(res) {
  let code = `http_${res.status}`;
  let message = `${res.status} ${res.statusText}`;
  let parameter = null;
  try {
    const body = await res.json();
    if (body && typeof body.error === 'object' && body.error !== null) {
      code = String(body.error.code ?? code);
      message = String(body.error.message ?? message);
      parameter = body.error.parameter ?? null;
    }
  } catch {
    // Not JSON: keep the status line.
  }
  return new ApiError(res.status, code, message, parameter);
}

/**
 * @param {string} method
 * @param {string} path
 * @param {{ body?: unknown, token?: string }} [opts] token: for the login check, before a session exists
 * @returns {Promise<Response>}
 */
async function send(method, path, opts = {}) {
  const token = opts.token ?? loadSession()?.token ?? '';
  /** @type {Record<string, string>} */
  const headers = { accept: 'application/json', ...authHeaders(token) };
  /** @type {RequestInit} */
  const init = { method, headers };
  if (opts.body !== undefined) {
    headers['content-type'] = 'application/json';
    init.body = JSON.stringify(opts.body);
  }
  let res;
  try {
    res = await fetch(path, init);
  } catch {
    throw new ApiError(0, 'network', 'the tokenwarden admin server cannot be reached');
  }
  if (!res.ok) {
    const err = await errorOf(res);
    if (res.status === 401 && opts.token === undefined) onUnauthorized();
    throw err;
  }
  return res;
}

/**
 * JSON request; resolves to the parsed body (null for 204).
 * @param {string} method
 * @param {string} path
 * @param {{ body?: unknown, token?: string }} [opts]
 * @returns {Promise<any>}
 */
export async function api(method, path, opts) {
  const res = await send(method, path, opts);
  if (res.status === 204) return null;
  const text = await res.text();
  return text === '' ? null : JSON.parse(text);
}

/** @param {string} path */
export const get = (path) => api('GET', path);

/**
 * Downloads a file from the API (the token cannot ride on a plain link), under the server's file
 * name when it gives one.
 * @param {string} path
 * @param {string} fallbackName
 */
export async function download(path, fallbackName) {
  const res = await send('GET', path);
  const blob = await res.blob();
  const disposition = res.headers.get('content-disposition') ?? '';
  const name = /filename="([^"]+)"/.exec(disposition)?.[1] ?? fallbackName;
  const url = URL.createObjectURL(blob);
  const a = document.createElement('a');
  a.href = url;
  a.download = name;
  document.body.appendChild(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
  return name;
}

/** Path segment for an id (SPIFFE ids and provider/model contain slashes). @param {string} id */
export const seg = (id) => encodeURIComponent(id);

/**
 * Query string from the defined entries.
 * @param {Record<string, string | number | undefined | null>} params
 */
export function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null && v !== '') q.set(k, String(v));
  const s = q.toString();
  return s === '' ? '' : `?${s}`;
}
