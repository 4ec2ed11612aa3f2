/**
 * Validates an Envoy bootstrap YAML document without Envoy (envoy-ext-proc.md §10.1): a schema walk
 * from `envoy.config.bootstrap.v3.Bootstrap` over the official Envoy 1.31 protos (proto-walk.ts),
 * then ext_proc rules (ext-proc-rules.ts) and cluster references (cluster-rules.ts).
 * Lines using API newer than 1.31 must carry `# [Envoy >= 1.NN]`.
 */
import { LineCounter, parseDocument } from 'yaml';
import { clusterIssues } from './cluster-rules.js';
import { extProcIssues } from './ext-proc-rules.js';
import type { ConfigIssue } from './issues.js';
import { officialApiRoot } from './official-protos.js';
import { walkDocument } from './proto-walk.js';
import type { Json } from './tree.js';

export type { ConfigIssue } from './issues.js';

export const BOOTSTRAP = 'envoy.config.bootstrap.v3.Bootstrap';

/** All problems found in `source` (empty when valid), ordered by line. Never throws on bad input. */
export function validateEnvoyYaml(source: string): ConfigIssue[] {
  const lineCounter = new LineCounter();
  const doc = parseDocument(source, { lineCounter, prettyErrors: false });
  if (doc.errors.length > 0) {
    return doc.errors.map((e) => ({ path: '', line: lineCounter.linePos(e.pos[0]).line, message: e.message }));
  }
  const root = officialApiRoot();
  let issues: ConfigIssue[];
  try {
    const walked = walkDocument(root, doc, lineCounter, source, BOOTSTRAP);
    const plain = doc.toJS({ maxAliasCount: 1000 }) as Json;
    issues = [...walked.issues, ...extProcIssues(plain, walked.lines), ...clusterIssues(plain, walked.lines)];
  } catch (err) {
    // Pathological documents (nesting deep enough to exhaust the stack, alias bombs).
    return [{ path: '', message: `cannot validate the document: ${(err as Error).message}` }];
  }
  return issues.sort((a, b) => (a.line ?? 0) - (b.line ?? 0) || a.path.localeCompare(b.path));
}

/** One line per issue: `line 12: path: message`. */
export function formatIssues(issues: readonly ConfigIssue[]): string {
  return issues.map((i) => `line ${i.line ?? '?'}: ${i.path || '(document)'}: ${i.message}`).join('\n');
}
