/**
 * Who made an admin change, and its audit entry. http.ts binds each request's identity to the JSON
 * routes it dispatches (withActor); handlers read it back with actorOf and record their changes
 * through an Auditor.
 */
import type { AuditEntry } from '../../catalog/types.js';
import { errorFields, type Logger } from '../../log.js';
import type { AuditLog } from '../../registry/catalog-types.js';
import { ANONYMOUS, type Identity } from '../auth.js';
import { withDeadline } from '../../deadline.js';
import type { JsonRoute, RouteInput } from '../json-routes.js';

/** A route input carrying the identity of the request's token. */
interface ActorInput extends RouteInput {
  actor: Identity;
}

/** The routes with every handler given `who` as the request's actor. */
export function withActor(routes: readonly JsonRoute[], who: Identity): JsonRoute[] {
  return routes.map((route) => ({ method: route.method, path: route.path, handle: (input) => route.handle({ ...input, actor: who } as ActorInput) }));
}

/** The identity bound by withActor; ANONYMOUS for routes dispatched without one (tests, no tokens). */
export function identityOf(input: RouteInput): Identity {
  const actor = (input as Partial<ActorInput>).actor;
  return actor ?? ANONYMOUS;
}

export type Change = Omit<AuditEntry, 'at' | 'actor'>;

export interface Auditor {
  /** Appends the change as made by the request's actor. Never throws: the change itself is done. */
  record(input: RouteInput, change: Change): Promise<void>;
}

/**
 * Audit entries are written after the change they describe. When the store fails in between, the
 * change stands (the client was not told otherwise) and the missing entry is logged as an error.
 */
export function auditor(deps: { audit?: AuditLog | undefined; now(): number; storeTimeoutMs: number; logger?: Logger | undefined }): Auditor {
  return {
    async record(input, change) {
      const log = deps.audit;
      if (log === undefined) return;
      const entry: AuditEntry = { at: deps.now(), actor: identityOf(input).name, ...change };
      try {
        await withDeadline(Promise.resolve().then(() => log.append(entry)), deps.storeTimeoutMs);
      } catch (err) {
        deps.logger?.error('audit entry not written', { actor: entry.actor, action: entry.action, entity: entry.entity, id: entry.id, ...errorFields(err) });
      }
    },
  };
}
