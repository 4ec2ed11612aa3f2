/** Configuration problems, collected so a user can fix them all in one pass. */

export interface ConfigIssue {
  /** The file name, or the flag / environment variable the value came from. */
  source: string;
  /** Key path such as `consumer.resolvers[2].header`; empty when the problem is the whole document. */
  path: string;
  message: string;
  /** 1-based position in the source file, when known. */
  line?: number;
  column?: number;
}

export function formatIssue(issue: ConfigIssue): string {
  const where = issue.line === undefined ? issue.source : `${issue.source}:${issue.line}:${issue.column ?? 1}`;
  return issue.path === '' ? `${where}: ${issue.message}` : `${where}: ${issue.path}: ${issue.message}`;
}

/** Thrown by the config loader; `message` holds one formatted line per issue. */
export class ConfigError extends Error {
  override readonly name = 'ConfigError';
  readonly issues: readonly ConfigIssue[];

  constructor(issues: readonly ConfigIssue[]) {
    super(issues.map(formatIssue).join('\n'));
    this.issues = issues;
  }
}

export type PathSegment = string | number;

const PLAIN_KEY = /^[A-Za-z_][A-Za-z0-9_-]*$/;
const MAX_KEY_CHARS = 64;

/** `['consumer', 'resolvers', 2, 'header']` -> `consumer.resolvers[2].header`; odd keys are quoted. */
export function formatPath(path: readonly PathSegment[]): string {
  let out = '';
  for (const segment of path) {
    if (typeof segment === 'number') {
      out += `[${segment}]`;
    } else if (PLAIN_KEY.test(segment) && segment.length <= MAX_KEY_CHARS) {
      out += out === '' ? segment : `.${segment}`;
    } else {
      // Quoting escapes control characters, so a hostile key cannot inject terminal sequences.
      const shown = segment.length > MAX_KEY_CHARS ? `${segment.slice(0, MAX_KEY_CHARS)}...` : segment;
      out += `[${JSON.stringify(shown)}]`;
    }
  }
  return out;
}
