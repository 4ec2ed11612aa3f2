/**
 * Budget selectors compiled once into predicates, because admission evaluates every budget's
 * selector on every LLM request.
 */
import { compileGlob } from '../glob.js';
import type { ApiKind } from '../domain.js';
import type { RequestSubject, Selector } from './types.js';

export type SubjectPredicate = (subject: RequestSubject) => boolean;

const always: SubjectPredicate = () => true;

/**
 * Any of the patterns (case-insensitive) matches the field; a `*` entry drops the check altogether.
 * Plain names go in a set, so long consumer lists cost one lookup.
 */
function anyGlob(patterns: readonly string[], field: (s: RequestSubject) => string): SubjectPredicate | undefined {
  if (patterns.includes('*')) return undefined;
  const names = new Set(patterns.filter((p) => !/[*?]/.test(p)).map((p) => p.toLowerCase()));
  const globs = patterns.filter((p) => /[*?]/.test(p)).map(compileGlob);
  return (s) => {
    const value = field(s);
    return names.has(value.toLowerCase()) || globs.some((glob) => glob.matches(value));
  };
}

/**
 * Absent fields match everything; a list matches when any entry does (an empty list matches
 * nothing); labels must all be present on the consumer with exactly these values.
 */
export function compileSelector(sel: Selector): SubjectPredicate {
  const checks: SubjectPredicate[] = [];
  const add = (check: SubjectPredicate | undefined): void => {
    if (check !== undefined) checks.push(check);
  };
  if (sel.apis !== undefined) {
    const apis = new Set<ApiKind>(sel.apis);
    add((s) => apis.has(s.api));
  }
  if (sel.providers !== undefined) add(anyGlob(sel.providers, (s) => s.provider));
  if (sel.models !== undefined) add(anyGlob(sel.models, (s) => s.model));
  if (sel.consumers !== undefined) add(anyGlob(sel.consumers, (s) => s.consumer));
  const labels = Object.entries(sel.labels ?? {});
  if (labels.length > 0) add((s) => labels.every(([key, value]) => Object.hasOwn(s.labels, key) && s.labels[key] === value));

  const [first] = checks;
  if (first === undefined) return always;
  if (checks.length === 1) return first;
  return (s) => checks.every((check) => check(s));
}

/**
 * The resource half of a selector (providers, models, apis): what still narrows a template attached
 * to a consumer, whose consumer half (consumers, labels) the attachment replaces.
 */
export function compileResourceSelector(sel: Selector): SubjectPredicate {
  const resources: Selector = {};
  if (sel.providers !== undefined) resources.providers = sel.providers;
  if (sel.models !== undefined) resources.models = sel.models;
  if (sel.apis !== undefined) resources.apis = sel.apis;
  return compileSelector(resources);
}
