/**
 * Envoy's header-mutation machinery for ext_proc answers (spec §4.2-4.5): HeaderMutationRules
 * decisions, applying a HeaderMutation to a header map (values read from `raw_value` only, `append`
 * BoolValue), body mutations and forward_rules. Pure functions over HeaderList.
 */
import type { WireBodyMutation, WireHeaderMutation } from '../../src/extproc/protocol.js';
import type { HeaderList } from './headers.js';

export interface MutationRules {
  allow_all_routing?: boolean;
  allow_envoy?: boolean;
  disallow_system?: boolean;
  disallow_all?: boolean;
  /** RE2-style pattern, must match the whole lower-case header name */
  allow_expression?: string;
  disallow_expression?: string;
  disallow_is_error?: boolean;
}

type CheckOp = 'SET' | 'APPEND' | 'REMOVE';
type CheckResult = 'OK' | 'IGNORE' | 'FAIL';

const ROUTING = new Set(['host', ':authority', ':method', ':scheme']);
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
const AUTHORITY = /^[A-Za-z0-9\-._~!$&'()*+,;=:%[\]@]+$/;

const fullMatch = (pattern: string, name: string): boolean => new RegExp(`^(?:${pattern})$`).test(name);

/** nghttp2-style name check; a leading ':' marks a pseudo-header. */
function headerNameIsValid(name: string): boolean {
  return TOKEN.test(name.startsWith(':') ? name.slice(1) : name);
}

/** nghttp2_check_header_value: no NUL, CR or LF. */
function headerValueIsValid(value: Uint8Array): boolean {
  return !value.some((b) => b === 0 || b === 0x0a || b === 0x0d);
}

function valueAllowed(name: string, value: Buffer): boolean {
  const s = value.toString('latin1');
  if (name === 'host' || name === ':authority') return s.length > 0 && AUTHORITY.test(s);
  if (name === ':scheme') return /^https?$/i.test(s);
  if (name === ':status') return /^\d+$/.test(s) && Number(s) >= 200;
  return headerValueIsValid(value);
}

/** HeaderMutationRules decision (spec §4.3), in Envoy's order. `name` must be lower-case. */
function checkMutation(rules: MutationRules, op: CheckOp, name: string, value?: Buffer): CheckResult {
  const deny: CheckResult = rules.disallow_is_error ? 'FAIL' : 'IGNORE';
  const allowed = ((): boolean => {
    if (op === 'REMOVE' && (name.startsWith(':') || name === 'host')) return false;
    if (rules.disallow_expression && fullMatch(rules.disallow_expression, name)) return false;
    if (rules.allow_expression && fullMatch(rules.allow_expression, name)) return true;
    if (rules.disallow_all) return false;
    if (!rules.allow_all_routing && ROUTING.has(name)) return false;
    if (name.startsWith(':') && (op === 'APPEND' || rules.disallow_system)) return false;
    if (!rules.allow_envoy && name.startsWith('x-envoy')) return false;
    return true;
  })();
  if (!allowed) return deny;
  if (op !== 'REMOVE' && value && !valueAllowed(name, value)) return deny;
  return 'OK';
}

export interface ApplyOptions {
  rules: MutationRules;
  /** CONTINUE_AND_REPLACE: `:method` changes are always accepted */
  replacing: boolean;
  /** content-length is being stripped for this direction: drop it silently (spec §4.6) */
  dropContentLength: boolean;
  maxHeadersCount: number;
  maxHeadersKb: number;
}

export interface ApplyResult {
  /** error text when the mutation fails the request (§4.2 strings; rule failures are ours) */
  error?: string;
  /** entries counted in `rejected_header_mutations` */
  rejected: number;
}

/**
 * Applies `m` to `headers` in place (removes first, then sets). Entries applied before an error
 * stay applied, as in Envoy.
 */
export function applyHeaderMutation(headers: HeaderList, m: WireHeaderMutation, o: ApplyOptions): ApplyResult {
  let rejected = 0;
  const sets = m.set_headers ?? [];
  const removes = m.remove_headers ?? [];
  if (sets.length > o.maxHeadersCount || removes.length > o.maxHeadersCount) {
    return { error: 'header_mutation_operation_count_exceeds_limit', rejected: rejected + 1 };
  }
  for (const raw of removes) {
    if (raw === '') continue;
    if (!headerNameIsValid(raw)) {
      return { error: 'header_mutation_remove_contains_invalid_character', rejected: rejected + 1 };
    }
    const name = raw.toLowerCase();
    const r = checkMutation(o.rules, 'REMOVE', name);
    if (r === 'OK') headers.remove(name);
    else if (r === 'IGNORE') rejected++;
    else return { error: `header_mutation_rejected_remove_${name}`, rejected: rejected + 1 };
  }
  for (const opt of sets) {
    const h = opt.header;
    if (!h) continue;
    const key = h.key ?? '';
    // Envoy reads raw_value only; a HeaderValue carrying only `value` sets an empty value.
    const value = Buffer.from(h.raw_value ?? []);
    const name = key.toLowerCase();
    if (o.dropContentLength && name === 'content-length') continue;
    if (!headerNameIsValid(key) || !headerValueIsValid(value)) {
      return { error: 'header_mutation_set_contains_invalid_character', rejected: rejected + 1 };
    }
    const append = opt.append?.value === true;
    const op: CheckOp = append && headers.has(name) ? 'APPEND' : 'SET';
    const r = o.replacing && name === ':method' ? 'OK' : checkMutation(o.rules, op, name, value);
    if (r === 'IGNORE') {
      rejected++;
      continue;
    }
    if (r === 'FAIL') return { error: `header_mutation_rejected_set_${name}`, rejected: rejected + 1 };
    if (append) headers.add(name, value);
    else headers.set(name, value);
  }
  if (headers.byteSize() > o.maxHeadersKb * 1024 || headers.size > o.maxHeadersCount) {
    return { error: 'header_mutation_result_exceeds_limit', rejected: rejected + 1 };
  }
  return { rejected };
}

/** Which member of the BodyMutation oneof is set (decoded messages carry it as own property). */
export function bodyMutationKind(bm: WireBodyMutation): 'body' | 'clear_body' | 'streamed_response' | undefined {
  const own = (k: string): boolean =>
    Object.prototype.hasOwnProperty.call(bm, k) && (bm as Record<string, unknown>)[k] != null;
  if (own('streamed_response')) return 'streamed_response';
  if (own('body')) return 'body';
  if (own('clear_body')) return 'clear_body';
  return undefined;
}

/** MutationUtils::applyBodyMutations: `body` replaces, `clear_body: true` empties, else unchanged. */
export function applyBodyMutation(bm: WireBodyMutation, data: Buffer): Buffer {
  switch (bodyMutationKind(bm)) {
    case 'body':
      return Buffer.from(bm.body ?? []);
    case 'clear_body':
      return bm.clear_body ? Buffer.alloc(0) : data;
    default:
      return data;
  }
}

const matches = (m: string | RegExp, name: string): boolean =>
  typeof m === 'string' ? m === name : new RegExp(`^(?:${m.source})$`, m.flags).test(name);

/** forward_rules (spec §5.4) for one lower-case header name. */
export function headerForwarded(name: string, allowed: Array<string | RegExp>, disallowed: Array<string | RegExp>): boolean {
  if (disallowed.some((m) => matches(m, name))) return false;
  return allowed.length === 0 || allowed.some((m) => matches(m, name));
}
