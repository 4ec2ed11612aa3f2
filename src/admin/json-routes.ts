/**
 * Admin routes that take a method, an `{id}` path segment and a JSON body (the budgets API), on top
 * of http.ts, which serves only GET/HEAD routes without bodies. http.ts calls dispatchJsonRoute()
 * for paths its own table does not know, after its auth check.
 */
import type http from 'node:http';
import { ApiError, type Reply } from './reply.js';

export type Method = 'GET' | 'POST' | 'PUT' | 'DELETE';

export interface RouteInput {
  query: URLSearchParams;
  /** The decoded `{id}` segment, for paths that have one. */
  id: string;
  /** The parsed JSON body (POST and PUT), else undefined. */
  body: unknown;
}

export interface JsonRoute {
  method: Method;
  /** A literal path, optionally ending in `/{id}` (one non-empty segment). */
  path: string;
  handle(input: RouteInput): Promise<Reply>;
}

/** Largest JSON body accepted (413 beyond): a budget is a few hundred bytes. */
export const MAX_JSON_BODY_BYTES = 64 * 1024;

const ID_SUFFIX = '/{id}';

export type RouteMatch = { route: JsonRoute; id: string } | { allow: Method[] } | null;

/** The route for a method and path; `{allow}` when the path exists with other methods; null when unknown. */
export function matchRoute(routes: readonly JsonRoute[], method: string, path: string): RouteMatch {
  const allow: Method[] = [];
  for (const route of routes) {
    const id = idOf(route.path, path);
    if (id === null) continue;
    // HEAD is a GET without the body (Node drops the body of HEAD replies).
    if (route.method === method || (route.method === 'GET' && method === 'HEAD')) return { route, id };
    allow.push(route.method);
  }
  return allow.length > 0 ? { allow } : null;
}

/** The decoded id when `path` fits `pattern` ('' for patterns without one), else null. */
function idOf(pattern: string, path: string): string | null {
  if (!pattern.endsWith(ID_SUFFIX)) return pattern === path ? '' : null;
  const prefix = pattern.slice(0, -ID_SUFFIX.length + 1);
  if (!path.startsWith(prefix)) return null;
  const segment = path.slice(prefix.length);
  if (segment === '' || segment.includes('/')) return null;
  try {
    return decodeURIComponent(segment);
  } catch {
    throw new ApiError(400, 'invalid_path', 'the id in the path is not valid percent-encoding', 'id');
  }
}

/**
 * Serves a JSON route, or returns null when no route has this path (http.ts then answers 404).
 * Bodies: only on POST and PUT, `application/json`, at most maxBodyBytes.
 */
export async function dispatchJsonRoute(
  routes: readonly JsonRoute[],
  req: http.IncomingMessage,
  path: string,
  query: URLSearchParams,
  maxBodyBytes = MAX_JSON_BODY_BYTES,
): Promise<Reply | null> {
  const match = matchRoute(routes, req.method ?? 'GET', path);
  if (match === null) return null;
  if ('allow' in match) {
    const allow = match.allow.includes('GET') ? ['GET', 'HEAD', ...match.allow.filter((m) => m !== 'GET')] : match.allow;
    throw new ApiError(405, 'method_not_allowed', `${path} accepts ${allow.join(', ')}`, null, { allow: allow.join(', ') });
  }
  const takesBody = match.route.method === 'POST' || match.route.method === 'PUT';
  if (!takesBody && hasBody(req)) throw new ApiError(400, 'body_not_allowed', `${match.route.method} ${path} takes no request body`);
  const body = takesBody ? await readJsonBody(req, maxBodyBytes) : undefined;
  return match.route.handle({ query, id: match.id, body });
}

export function hasBody(req: http.IncomingMessage): boolean {
  const length = req.headers['content-length'];
  return req.headers['transfer-encoding'] !== undefined || (length !== undefined && length !== '0');
}

/** The parsed body; 415 unless JSON, 413 past the cap (read no further), 400 when empty or malformed. */
export async function readJsonBody(req: http.IncomingMessage, maxBytes: number): Promise<unknown> {
  const type = (req.headers['content-type'] ?? '').split(';')[0]?.trim().toLowerCase();
  if (type !== 'application/json') {
    throw new ApiError(415, 'unsupported_media_type', 'the request body must be JSON (content-type: application/json)');
  }
  const tooLarge = (): ApiError => new ApiError(413, 'body_too_large', `the request body exceeds ${maxBytes} bytes`);
  if (Number(req.headers['content-length'] ?? 0) > maxBytes) throw tooLarge();
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > maxBytes) throw tooLarge();
    chunks.push(chunk);
  }
  const text = Buffer.concat(chunks).toString('utf8');
  if (text.trim() === '') throw new ApiError(400, 'missing_body', 'a JSON request body is required');
  try {
    return JSON.parse(text) as unknown;
  } catch (err) {
    throw new ApiError(400, 'invalid_json', `the request body is not valid JSON: ${(err as Error).message}`);
  }
}
