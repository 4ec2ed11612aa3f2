/**
 * Catalog definitions from admin API bodies: the config's own validation (config/catalog-schema.ts)
 * in the API's camelCase spelling, so the API accepts exactly what the config file does and every
 * problem names the field the client wrote. Ids come from the path: a body may omit its `id`, and a
 * different one is refused rather than taken as a rename.
 */
import type { ConsumerEntry, ConsumerRule, Owner, Resource, SanctionPolicy } from '../../catalog/types.js';
import { formatPath } from '../../config/errors.js';
import { API_SCHEMAS as API, toConsumer, toOwner, toPolicy, toResource, toRule } from '../../config/catalog-schema.js';
import type { Issue, Mapping, Schema } from '../../config/schema.js';
import { MAX_GLOB_CHARS, isMapping, text } from '../../config/schema.js';
import { ApiError } from '../reply.js';

function invalid(field: string, message: string): ApiError {
  return new ApiError(400, 'invalid_body', field === '' ? message : `${field}: ${message}`, field === '' ? null : field);
}

/** The parsed body; throws a 400 naming the first bad field (in document order). */
function parse<T>(schema: Schema<T>, body: unknown): T {
  if (!isMapping(body)) throw invalid('', 'the body must be a JSON object');
  const issues: Issue[] = [];
  const parsed = schema.parse(body, [], issues);
  const first = issues[0];
  if (first !== undefined) throw invalid(formatPath(first.path), first.message);
  return parsed as T;
}

/** The body with the path's values for `keys` filled in; a body value that differs is refused. */
function withPath(body: unknown, values: Record<string, string>): unknown {
  if (!isMapping(body)) return body;
  const out: Mapping = { ...body };
  for (const [key, value] of Object.entries(values)) {
    if (out[key] === undefined) out[key] = value;
    else if (out[key] !== value) throw invalid(key, `must match the path (${JSON.stringify(value)})`);
  }
  return out;
}

export function parseOwnerBody(body: unknown, pathId?: string): Owner {
  return toOwner(parse(API.owner, pathId === undefined ? body : withPath(body, { id: pathId })), 'api');
}

export function parseConsumerBody(body: unknown, pathId: string): ConsumerEntry {
  return toConsumer(parse(API.consumer, withPath(body, { id: pathId })), 'api');
}

export function parseRuleBody(body: unknown, pathId?: string): ConsumerRule {
  return toRule(parse(API.rule, pathId === undefined ? body : withPath(body, { id: pathId })), 'api');
}

/** `provider/model` from a resource path id (the provider never contains a slash; models may). */
export function splitResourceId(id: string): { provider: string; model: string } {
  const slash = id.indexOf('/');
  if (slash <= 0 || slash === id.length - 1) throw new ApiError(400, 'invalid_path', 'the resource id must be <provider>/<model>, percent-encoded as one path segment', 'id');
  return { provider: id.slice(0, slash).toLowerCase(), model: id.slice(slash + 1) };
}

export function parseResourceBody(body: unknown, pathId: string): Resource {
  const { provider, model } = splitResourceId(pathId);
  const source = withPath(body, { provider, model });
  try {
    return toResource(parse(API.resource, source), 'api');
  } catch (err) {
    // The provider and model came from the path: say so.
    if (err instanceof ApiError && (err.parameter === 'provider' || err.parameter === 'model') && isMapping(body) && body[err.parameter] === undefined) {
      throw new ApiError(400, 'invalid_path', `id: ${err.message}`, 'id');
    }
    throw err;
  }
}

export function parsePolicyBody(body: unknown, pathId: string): SanctionPolicy {
  let source = body;
  if (isMapping(body) && body['id'] !== undefined) {
    if (body['id'] !== pathId) throw invalid('id', `must match the id in the path (${JSON.stringify(pathId)})`);
    source = Object.fromEntries(Object.entries(body).filter(([key]) => key !== 'id'));
  }
  return toPolicy(pathId, parse(API.policy, source), 'api');
}

const matchSchema = text({ minLength: 1, maxLength: MAX_GLOB_CHARS });

/** `{match}` of a rule preview. */
export function parsePreviewBody(body: unknown): string {
  if (!isMapping(body)) throw invalid('', 'the body must be a JSON object');
  for (const key of Object.keys(body)) if (key !== 'match') throw invalid(key, 'unknown key; allowed keys: match');
  if (body['match'] === undefined) throw invalid('match', 'missing required key');
  const issues: Issue[] = [];
  const match = matchSchema.parse(body['match'], ['match'], issues);
  if (issues[0] !== undefined) throw invalid('match', issues[0].message);
  return match as string;
}
