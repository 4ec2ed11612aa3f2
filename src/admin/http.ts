/**
 * The admin HTTP server: health, readiness, Prometheus metrics, the inventory API (inventory/), the
 * budgets, catalog and showback APIs (budgets/, catalog/, showback/) and the console. Routing, auth
 * (named tokens with roles), limits and writing replies live here; handlers return a Reply.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import type { Metrics } from '../telemetry/metrics.js';
import type { InventoryStore } from '../inventory/types.js';
import type { AdminConfig } from '../config/types.js';
import { errorFields, type Logger } from '../log.js';
import { isLoopbackAddress } from '../net.js';
import { apiRoutes, type Handler } from './inventory/api.js';
import { adminTokens, authenticate, ANONYMOUS, type Identity, type NamedToken } from './auth.js';
import { withActor } from './catalog/audit.js';
import { catalogRoutes, type CatalogApiDeps } from './catalog/api.js';
import type { CatalogView } from '../catalog/types.js';
import { withDeadline } from '../deadline.js';
import { ApiError, jsonReply, type Reply } from './reply.js';
import { budgetRoutes, type BudgetsApiDeps } from './budgets/api.js';
import { dispatchJsonRoute, hasBody, type JsonRoute } from './json-routes.js';
import { ConsoleFiles } from './console.js';

export interface AdminOptions {
  address: string;
  metrics: Metrics;
  store: InventoryStore;
  /** Bearer token required on /api/* and /metrics (the token named `admin`, role admin). */
  token: string;
  /** Named tokens with roles, besides `token`. With neither, there is no auth (actor `anonymous`, role admin). */
  tokens?: NamedToken[];
  /** True while the gRPC server is serving. */
  ready(): boolean;
  /** Longest wait for one store call before answering 503 (default 5 s). */
  storeTimeoutMs?: number;
  /** Longest wait for the store's ping in /readyz (default 1 s). */
  readyTimeoutMs?: number;
  /** Clock for the usage API's default range. */
  now?(): number;
  logger?: Logger;
  /** The budgets API (reads and, with a token when configured, writes). */
  budgets?: Omit<BudgetsApiDeps, 'storeTimeoutMs' | 'now' | 'logger' | 'audit'>;
  /** The catalog API; its audit log also records budget and template writes. */
  catalog?: Omit<CatalogApiDeps, 'store' | 'budgets' | 'storeTimeoutMs' | 'now' | 'logger'> & {
    /** The catalog in force, for each consumer's resolution in /api/v1/consumers. */
    view(): CatalogView;
  };
  /** More JSON routes (e.g. showback), served with the same auth, roles and actor binding. */
  extraRoutes?: JsonRoute[];
}

/** Longest request target accepted (414 beyond). */
export const MAX_URL_BYTES = 8 * 1024;
const ALLOW = 'GET, HEAD';
const READ_METHODS = new Set(['GET', 'HEAD']);
const COMMON_HEADERS = { 'cache-control': 'no-store', 'x-content-type-options': 'nosniff' };

interface Route {
  /** Needs the bearer token (when one is configured). */
  auth: boolean;
  handle: Handler;
}

export class AdminServer {
  private readonly server: http.Server;
  private readonly routes: Map<string, Route>;
  private readonly jsonRoutes: JsonRoute[];
  private readonly console = new ConsoleFiles();
  private readonly tokens: NamedToken[];

  constructor(private readonly opts: AdminOptions) {
    this.tokens = adminTokens(opts.token, opts.tokens);
    const shared = {
      storeTimeoutMs: opts.storeTimeoutMs ?? 5_000,
      now: opts.now ?? Date.now,
      ...(opts.logger ? { logger: opts.logger } : {}),
    };
    const catalog = opts.catalog;
    const api = apiRoutes({ store: opts.store, ...shared, ...(catalog ? { catalog: catalog.view } : {}) });
    this.routes = new Map<string, Route>([
      ['/healthz', { auth: false, handle: async () => jsonReply(200, { status: 'ok' }) }],
      ['/readyz', { auth: false, handle: () => this.readiness() }],
      ['/metrics', { auth: true, handle: () => this.metrics() }],
      ...[...api].map(([path, handle]): [string, Route] => [path, { auth: true, handle }]),
    ]);
    const budgets = opts.budgets;
    this.jsonRoutes = [
      ...(budgets ? budgetRoutes({ ...budgets, ...shared, ...(catalog ? { audit: catalog.registry.audit } : {}) }) : []),
      ...(catalog ? catalogRoutes({ ...catalog, store: opts.store, ...shared, ...(budgets ? { budgets: { policies: budgets.policies, registry: budgets.registry } } : {}) }) : []),
      ...(opts.extraRoutes ?? []),
    ];
    this.server = http.createServer((req, res) => void this.handle(req, res));
    this.server.keepAliveTimeout = 5_000;
    this.server.on('clientError', answerClientError);
  }

  private async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    let reply: Reply;
    try {
      reply = await this.route(req);
    } catch (err) {
      if (!(err instanceof ApiError)) this.opts.logger?.error('admin request failed', errorFields(err));
      reply = err instanceof ApiError ? err.reply() : new ApiError(500, 'internal', 'internal error').reply();
    }
    // An unread request body would otherwise be drained before the connection can be reused.
    if (hasBody(req) && !req.readableEnded) reply.headers.connection = 'close';
    await writeReply(res, reply, this.opts.logger);
  }

  private async route(req: http.IncomingMessage): Promise<Reply> {
    const target = req.url ?? '/';
    if (Buffer.byteLength(target) > MAX_URL_BYTES) throw new ApiError(414, 'uri_too_long', `the request URL exceeds ${MAX_URL_BYTES} bytes`);
    const q = target.indexOf('?');
    const path = q === -1 ? target : target.slice(0, q);
    const route = this.routes.get(path);
    // Unknown /api paths need the token too, so the API's shape cannot be probed without it.
    const who = (route?.auth ?? path.startsWith('/api/')) ? this.identify(req) : ANONYMOUS;
    if (who.role === 'viewer' && !READ_METHODS.has(req.method ?? 'GET')) {
      throw new ApiError(403, 'forbidden', `the token "${who.name}" has the viewer role, which may only read (GET, HEAD)`);
    }
    if (!route && (req.method === 'GET' || req.method === 'HEAD') && !path.startsWith('/api/')) {
      const page = this.console.serve(path);
      if (page) return page;
    }
    if (!route) {
      const routes = [whoami(who), ...withActor(this.jsonRoutes, who)];
      const reply = await dispatchJsonRoute(routes, req, path, new URLSearchParams(q === -1 ? '' : target.slice(q + 1)));
      if (reply) return reply;
      throw new ApiError(404, 'not_found', `no endpoint at ${path}`);
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') throw new ApiError(405, 'method_not_allowed', `${path} accepts GET and HEAD`, null, { allow: ALLOW });
    if (hasBody(req)) throw new ApiError(400, 'body_not_allowed', 'these endpoints take no request body');
    return route.handle(new URLSearchParams(q === -1 ? '' : target.slice(q + 1)));
  }

  /** The request's identity; 401 when a token is required and none of the configured ones was presented. */
  private identify(req: http.IncomingMessage): Identity {
    const who = authenticate(req.headers.authorization, this.tokens);
    if (who !== null) return who;
    const presented = req.headers.authorization !== undefined;
    throw new ApiError(401, 'unauthorized', presented ? 'invalid bearer token' : 'a bearer token is required', null, {
      'www-authenticate': presented ? 'Bearer realm="tokenwarden", error="invalid_token"' : 'Bearer realm="tokenwarden"',
    });
  }

  private async readiness(): Promise<Reply> {
    if (!this.opts.ready()) return notReady('grpc_not_serving', 'the gRPC server is not serving');
    try {
      await withDeadline(Promise.resolve().then(() => this.opts.store.ping()), this.opts.readyTimeoutMs ?? 1_000);
    } catch (err) {
      this.opts.logger?.warn('inventory store ping failed', errorFields(err));
      return notReady('store_unreachable', 'the inventory store did not answer the ping');
    }
    return jsonReply(200, { status: 'ready' });
  }

  private async metrics(): Promise<Reply> {
    const registry = this.opts.metrics.registry;
    return { status: 200, headers: { 'content-type': registry.contentType }, body: await registry.metrics() };
  }

  async start(): Promise<string> {
    const { host, port } = splitHostPort(this.opts.address);
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(port, host, () => {
        this.server.off('error', reject);
        resolve();
      });
    });
    const a = this.server.address() as AddressInfo;
    return a.family === 'IPv6' ? `[${a.address}]:${a.port}` : `${a.address}:${a.port}`;
  }

  async close(): Promise<void> {
    await new Promise<void>((resolve) => {
      this.server.close(() => resolve());
      this.server.closeAllConnections();
    });
  }
}

/** `GET /api/v1/whoami`: the name and role of the token used (the console shows it and hides writes from viewers). */
function whoami(who: Identity): JsonRoute {
  return { method: 'GET', path: '/api/v1/whoami', handle: async () => jsonReply(200, { name: who.name, role: who.role }) };
}

function notReady(reason: string, message: string): Reply {
  return jsonReply(503, { status: 'not_ready', reason, message });
}

async function writeReply(res: http.ServerResponse, reply: Reply, logger: Logger | undefined): Promise<void> {
  const headers: Record<string, string | number> = { ...COMMON_HEADERS, ...reply.headers };
  if (typeof reply.body === 'string') {
    res.writeHead(reply.status, { ...headers, 'content-length': Buffer.byteLength(reply.body) });
    res.end(reply.body);
    return;
  }
  res.writeHead(reply.status, headers);
  try {
    for await (const chunk of reply.body) {
      if (res.destroyed) return;
      if (!res.write(chunk)) await drained(res);
    }
    res.end();
  } catch (err) {
    // Headers are out: cut the response short so the client cannot take it for a complete file.
    logger?.warn('admin export failed part way', errorFields(err));
    res.destroy();
  }
}

/** Resolves when the response can take more data, or when the client has gone. */
function drained(res: http.ServerResponse): Promise<void> {
  return new Promise((resolve) => {
    const done = (): void => {
      res.off('drain', done);
      res.off('close', done);
      resolve();
    };
    res.on('drain', done);
    res.on('close', done);
  });
}

/**
 * Requests Node rejects before routing. A request line longer than Node's header limit (16 KiB)
 * is still a 414, like any URL over MAX_URL_BYTES; other header overflows are 431.
 */
function answerClientError(err: NodeJS.ErrnoException & { rawPacket?: Buffer }, socket: Duplex): void {
  if (err.code === 'ECONNRESET' || !socket.writable) {
    socket.destroy();
    return;
  }
  let status = 400;
  if (err.code === 'HPE_HEADER_OVERFLOW') status = requestLineLength(err.rawPacket) > MAX_URL_BYTES ? 414 : 431;
  else if (err.code === 'ERR_HTTP_REQUEST_TIMEOUT') status = 408;
  const body = JSON.stringify({ error: { code: CLIENT_ERROR_CODES[status], message: http.STATUS_CODES[status], parameter: null } });
  socket.end(
    `HTTP/1.1 ${status} ${http.STATUS_CODES[status]}\r\ncontent-type: application/json; charset=utf-8\r\n` +
      `content-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`,
  );
}

const CLIENT_ERROR_CODES: Record<number, string> = { 400: 'bad_request', 408: 'request_timeout', 414: 'uri_too_long', 431: 'headers_too_large' };

function requestLineLength(packet: Buffer | undefined): number {
  if (!packet) return 0;
  const end = packet.indexOf('\r\n');
  return end === -1 ? packet.length : end;
}

/**
 * Refuses an admin API reachable from other machines without an admin-role token (the config loader
 * refuses it too; embedders may build a config without it).
 */
export function checkAdminExposure(admin: Pick<AdminConfig, 'address' | 'token' | 'tokens'>): void {
  if (admin.address === '' || adminTokens(admin.token, admin.tokens).some((t) => t.role === 'admin')) return;
  if (isLoopbackAddress(splitHostPort(admin.address).host)) return;
  throw new Error(`admin.address (${admin.address}) is not a loopback address: an admin-role token (admin.token or admin.tokens) is required`);
}

export function splitHostPort(address: string): { host: string; port: number } {
  const i = address.lastIndexOf(':');
  const host = address.slice(0, i).replace(/^\[(.*)\]$/, '$1');
  return { host, port: Number(address.slice(i + 1)) };
}
