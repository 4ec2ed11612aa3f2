/**
 * Load the YAML configuration: parse, validate against `configSchema`, resolve the fingerprint
 * secret from the environment, and merge over `defaultConfig()` (mappings merge, lists replace).
 */
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import { LineCounter, isAlias, isMap, isScalar, isSeq, parseDocument, visit, type Alias, type Document } from 'yaml';
import { ConfigError, formatPath, type ConfigIssue, type PathSegment } from './errors.js';
import { isMapping, type Issue, type Mapping, type Schema } from './schema.js';
import { configSchema, type ConfigDocument } from './config-schema.js';
import { toBudgets, toTemplates } from './budgets-schema.js';
import { toConsumer, toOwner, toPolicies, toResource, toRule } from './catalog-schema.js';
import { isLoopbackAddress } from '../net.js';
import { defaultConfig, PUBLIC_DEV_FINGERPRINT_SECRET, type TokenwardenConfig } from './types.js';

/** When set (and non-empty) it replaces `consumer.fingerprint_secret`, whatever the file says. */
export const FINGERPRINT_SECRET_ENV = 'TOKENWARDEN_FINGERPRINT_SECRET';

/** Configuration files are small; refusing big ones avoids reading a wrong path (a log, a device). */
export const MAX_CONFIG_FILE_BYTES = 1024 * 1024;
/** Bounds alias expansion ("billion laughs") and recursion depth. */
const MAX_NODES = 100_000;
const MAX_DEPTH = 64;

export type Environment = Readonly<Record<string, string | undefined>>;

interface Position {
  line: number;
  column: number;
}

interface Located {
  key?: Position;
  value?: Position;
}

/** An issue found while reading the YAML tree, which knows its own position. */
interface TreeIssue extends Issue {
  at?: Position;
}

interface PlainDocument {
  value: unknown;
  /** By formatted key path. */
  positions: Map<string, Located>;
  issues: TreeIssue[];
}

/**
 * What each alias refers to: the last node with that anchor before it in document order (YAML's rule).
 * Computed in one pass because `Alias.resolve` rescans the whole document for every alias.
 */
function aliasTargets(doc: Document.Parsed): Map<Alias, unknown> {
  const latest = new Map<string, unknown>();
  const targets = new Map<Alias, unknown>();
  visit(doc, {
    Node(_key, node) {
      if (isAlias(node)) targets.set(node, latest.get(node.source));
      else if (node.anchor !== undefined) latest.set(node.anchor, node);
    },
  });
  return targets;
}

/**
 * Convert the YAML tree to plain values ourselves (instead of `toJS`) so that every key path keeps its
 * line:column, duplicate and non-scalar keys are reported with their path, and alias expansion is bounded.
 */
function toPlain(doc: Document.Parsed, lineCounter: LineCounter): PlainDocument {
  const positions = new Map<string, Located>();
  const issues: TreeIssue[] = [];
  const targets = aliasTargets(doc);
  let nodes = 0;
  let tooBig = false;

  const positionOf = (node: unknown): Position | undefined => {
    const range = (node as { range?: readonly number[] | null } | null)?.range;
    if (range?.[0] === undefined) return undefined;
    const { line, col } = lineCounter.linePos(range[0]);
    return { line, column: col };
  };

  const read = (node: unknown, path: PathSegment[], depth: number): unknown => {
    nodes += 1;
    if (nodes > MAX_NODES || depth > MAX_DEPTH) {
      if (!tooBig) issues.push({ path, message: 'the document is nested too deeply or expands too many aliases' });
      tooBig = true;
      return undefined;
    }
    if (isAlias(node)) return read(targets.get(node), path, depth + 1);
    if (node === null || node === undefined) return null;
    if (isScalar(node)) {
      const value = node.value;
      if (value === null || typeof value === 'string' || typeof value === 'number' || typeof value === 'boolean') return value;
      issues.push({ path, message: `unsupported YAML value${node.tag === undefined ? '' : ` (${node.tag})`}`, at: positionOf(node) });
      return undefined;
    }
    if (isSeq(node)) {
      return node.items.map((item, index) => {
        const itemPath = [...path, index];
        const at = positionOf(item);
        if (at !== undefined) positions.set(formatPath(itemPath), { value: at });
        return read(item, itemPath, depth + 1);
      });
    }
    if (isMap(node)) {
      // A null prototype makes `__proto__` an ordinary (and therefore unknown) key.
      const out: Mapping = Object.create(null) as Mapping;
      for (const pair of node.items) {
        if (!isScalar(pair.key) || pair.key.value === null || typeof pair.key.value === 'object') {
          issues.push({ path, message: 'mapping keys must be plain strings', at: positionOf(pair.key) ?? positionOf(node) });
          continue;
        }
        const key = String(pair.key.value);
        const keyPath = [...path, key];
        const formatted = formatPath(keyPath);
        const keyAt = positionOf(pair.key);
        if (Object.hasOwn(out, key)) {
          const first = positions.get(formatted)?.key;
          const where = first === undefined ? '' : ` (first defined at line ${first.line})`;
          issues.push({ path: keyPath, message: `duplicate key${where}`, at: keyAt });
          continue;
        }
        positions.set(formatted, { key: keyAt, value: positionOf(pair.value) ?? keyAt });
        out[key] = read(pair.value, keyPath, depth + 1);
      }
      return out;
    }
    issues.push({ path, message: 'unsupported YAML node' });
    return undefined;
  };

  return { value: read(doc.contents, [], 0), positions, issues };
}

/** The issue's position: its own key/value when known, else the nearest enclosing key. */
function locate(issue: TreeIssue, positions: Map<string, Located>): Position | undefined {
  if (issue.at !== undefined) return issue.at;
  for (let length = issue.path.length; length > 0; length--) {
    const located = positions.get(formatPath(issue.path.slice(0, length)));
    if (located === undefined) continue;
    const exact = length === issue.path.length;
    return (exact && issue.atKey === true ? located.key : located.value) ?? located.key;
  }
  return undefined;
}

function toConfigIssue(issue: TreeIssue, source: string, positions: Map<string, Located>): ConfigIssue {
  const at = locate(issue, positions);
  const located: ConfigIssue = { source, path: formatPath(issue.path), message: issue.message };
  if (at !== undefined) {
    located.line = at.line;
    located.column = at.column;
  }
  return located;
}

type DeepPartial<T> = T extends readonly unknown[] ? T : T extends object ? { [K in keyof T]?: DeepPartial<T[K]> } : T;

function mergeDefaults<T>(base: T, patch: DeepPartial<T> | undefined): T {
  if (patch === undefined) return base;
  const merged: Mapping = { ...(base as Mapping) };
  for (const [key, value] of Object.entries(patch as Mapping)) {
    if (value === undefined) continue;
    const current = merged[key];
    merged[key] = isMapping(current) && isMapping(value) ? mergeDefaults(current, value) : value;
  }
  return merged as T;
}

/** Secrets that may be given as `<key>_env: VARIABLE` instead of inline. */
const SECRET_KEYS: readonly { section: readonly string[]; key: string }[] = [
  { section: ['consumer'], key: 'fingerprint_secret' },
  { section: ['admin'], key: 'token' },
  { section: ['store', 'redis'], key: 'url' },
];

/** Turn the validated document into a config patch, reading every `<key>_env` from the environment. */
function resolveSecrets(document: ConfigDocument, env: Environment, issues: Issue[]): DeepPartial<TokenwardenConfig> {
  const patch = structuredClone(document) as Mapping;
  for (const { section, key } of SECRET_KEYS) {
    let node: unknown = patch;
    for (const name of section) node = isMapping(node) ? node[name] : undefined;
    if (!isMapping(node) || node[`${key}_env`] === undefined) continue;
    const variable = String(node[`${key}_env`]);
    delete node[`${key}_env`];
    const value = env[variable];
    if (value === undefined || value === '') {
      const state = value === undefined ? 'is not set' : 'is empty';
      issues.push({ path: [...section, `${key}_env`], message: `environment variable ${variable} ${state}` });
      continue;
    }
    node[key] = value;
  }
  const admin = patch['admin'];
  const tokens = isMapping(admin) && Array.isArray(admin['tokens']) ? admin['tokens'] : [];
  tokens.forEach((entry: unknown, index) => {
    if (!isMapping(entry) || entry['token_env'] === undefined) return;
    const variable = String(entry['token_env']);
    delete entry['token_env'];
    const value = env[variable];
    if (value === undefined || value === '') {
      issues.push({ path: ['admin', 'tokens', index, 'token_env'], message: `environment variable ${variable} ${value === undefined ? 'is not set' : 'is empty'}` });
      return;
    }
    entry['token'] = value;
  });
  return patch as DeepPartial<TokenwardenConfig>;
}

/** The host of a `host:port` address is a loopback one (the same test the server applies). */
function isLoopbackHost(address: string): boolean {
  return isLoopbackAddress(address.slice(0, address.lastIndexOf(':')));
}

const PUBLIC_SECRET_PROBLEM =
  'is the published development value, with which anyone can recompute fingerprints; remove it to have a secret generated, or set your own';

/** Rules that span several keys, checked on the final configuration (file + flags). */
function crossFieldIssues(config: TokenwardenConfig): Issue[] {
  const issues: Issue[] = [];
  if (config.consumer.fingerprint_secret === PUBLIC_DEV_FINGERPRINT_SECRET) {
    issues.push({ path: ['consumer', 'fingerprint_secret'], message: PUBLIC_SECRET_PROBLEM });
  }
  const { address, token, tokens } = config.admin;
  const hasAdmin = token !== '' || tokens.some((t) => t.role === 'admin');
  if (address !== '' && !hasAdmin && !isLoopbackHost(address)) {
    issues.push({
      path: ['admin', 'token'],
      message: `is required when admin.address (${address}) is not a loopback address: set admin.token or admin.token_env, or an admin.tokens entry with role admin`,
    });
  }
  // admin.token is the token named "admin"; two tokens with one value would make the actor ambiguous.
  const named = new Map<string, string>(token === '' ? [] : [[token, 'admin.token']]);
  tokens.forEach((t, index) => {
    if (token !== '' && t.name === 'admin') {
      issues.push({ path: ['admin', 'tokens', index, 'name'], message: '"admin" is the name of admin.token; choose another name' });
    }
    const first = named.get(t.token);
    if (first !== undefined) issues.push({ path: ['admin', 'tokens', index, 'token'], message: `is the same token as ${first}; every token must be different` });
    else named.set(t.token, `admin.tokens[${index}]`);
  });
  return issues;
}

function applySecretOverride(config: TokenwardenConfig, env: Environment): TokenwardenConfig {
  const secret = env[FINGERPRINT_SECRET_ENV];
  if (secret === undefined) return config;
  if (secret === '' || secret === PUBLIC_DEV_FINGERPRINT_SECRET) {
    const message = secret === '' ? 'is set but empty' : PUBLIC_SECRET_PROBLEM;
    throw new ConfigError([{ source: `environment variable ${FINGERPRINT_SECRET_ENV}`, path: '', message }]);
  }
  return { ...config, consumer: { ...config.consumer, fingerprint_secret: secret } };
}

/**
 * Parse and validate configuration text. `source` names the file in messages. An empty document
 * yields the defaults. Throws `ConfigError` listing every problem found; throws nothing else.
 */
export function parseConfig(text: string, source: string, env: Environment = process.env): TokenwardenConfig {
  const lineCounter = new LineCounter();
  let doc: Document.Parsed;
  try {
    // Duplicate keys are detected in toPlain, where their key path is known.
    doc = parseDocument(text, { lineCounter, uniqueKeys: false, prettyErrors: false });
  } catch (error) {
    throw new ConfigError([{ source, path: '', message: `cannot parse YAML: ${String(error)}` }]);
  }
  const yamlProblems = [...doc.errors, ...doc.warnings].map((problem): ConfigIssue => {
    const { line, col } = lineCounter.linePos(problem.pos[0]);
    return { source, path: '', message: `invalid YAML: ${problem.message}`, line, column: col };
  });
  if (doc.errors.length > 0) throw new ConfigError(yamlProblems);

  const plain = toPlain(doc, lineCounter);
  const issues: TreeIssue[] = [...plain.issues];
  let patch: DeepPartial<TokenwardenConfig> = {};
  if (plain.value !== null && plain.value !== undefined) {
    if (!isMapping(plain.value)) {
      issues.push({ path: [], message: `the document must be a mapping of sections (grpc, admin, ...), got ${Array.isArray(plain.value) ? 'a list' : 'a single value'}` });
    } else {
      const document = configSchema.parse(plain.value, [], issues);
      if (document !== undefined) {
        // The conversions below assume valid entries; with issues, the ConfigError below is thrown anyway.
        const valid = issues.length === 0;
        patch = resolveSecrets(document, env, issues);
        if (valid) {
          // Budgets are written in a YAML-friendly shape (cost in USD, `per: month`); convert them.
          if (document.budgets !== undefined) patch.budgets = toBudgets(document);
          if (document.budget_templates !== undefined) patch.budget_templates = toTemplates(document);
          // Catalog sections are written in snake_case; the catalog model is camelCase.
          if (document.owners !== undefined) patch.owners = document.owners.map((e) => toOwner(e, 'config'));
          if (document.consumers !== undefined) patch.consumers = document.consumers.map((e) => toConsumer(e, 'config'));
          if (document.consumer_rules !== undefined) patch.consumer_rules = document.consumer_rules.map((e) => toRule(e, 'config'));
          if (document.resources !== undefined) patch.resources = document.resources.map((e) => toResource(e, 'config'));
          if (document.policies !== undefined) patch.policies = toPolicies(document.policies);
        }
      }
    }
  }
  const all = [...yamlProblems, ...issues.map((issue) => toConfigIssue(issue, source, plain.positions))];
  if (all.length > 0) throw new ConfigError(all);
  const config = applySecretOverride(mergeDefaults<TokenwardenConfig>(defaultConfig(), patch), env);
  const crossIssues = crossFieldIssues(config).map((issue) => toConfigIssue(issue, source, plain.positions));
  if (crossIssues.length > 0) throw new ConfigError(crossIssues);
  return config;
}

function readProblem(error: unknown): string {
  switch ((error as NodeJS.ErrnoException).code) {
    case 'ENOENT':
      return 'file not found';
    case 'EACCES':
    case 'EPERM':
      return 'permission denied';
    default:
      return `cannot read the file: ${error instanceof Error ? error.message : String(error)}`;
  }
}

/**
 * The file's text, or why it cannot be used. Reads at most MAX_CONFIG_FILE_BYTES + 1 bytes, so that
 * pipes such as /dev/stdin work and an endless device cannot hang the loader.
 */
function readConfigText(path: string): { text: string } | { problem: string } {
  let fd: number | undefined;
  try {
    fd = openSync(path, 'r');
    if (fstatSync(fd).isDirectory()) return { problem: 'is a directory, not a file' };
    const buffer = Buffer.alloc(MAX_CONFIG_FILE_BYTES + 1);
    let length = 0;
    while (length < buffer.length) {
      const read = readSync(fd, buffer, length, buffer.length - length, null);
      if (read === 0) break;
      length += read;
    }
    if (length > MAX_CONFIG_FILE_BYTES) return { problem: `the file is larger than ${MAX_CONFIG_FILE_BYTES} bytes` };
    return { text: buffer.toString('utf8', 0, length) };
  } catch (error) {
    return { problem: readProblem(error) };
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}

/** Read and parse a configuration file. Throws `ConfigError` (also for unreadable files). */
export function loadConfigFile(path: string, env: Environment = process.env): TokenwardenConfig {
  const read = readConfigText(path);
  if ('problem' in read) throw new ConfigError([{ source: path, path: '', message: read.problem }]);
  return parseConfig(read.text, path, env);
}

/** One value from outside the file, e.g. a command-line flag. */
export interface ConfigOverride {
  /** Dotted key path of a key inside a section, e.g. `grpc.address`. */
  path: string;
  value: unknown;
  /** Where the value came from, used as the source in messages, e.g. `--grpc-address`. */
  origin: string;
}

function schemaAt(path: readonly string[]): Schema<unknown> | undefined {
  let schema: Schema<unknown> = configSchema;
  for (const key of path) {
    const fields = (schema as { fields?: Record<string, Schema<unknown>> }).fields;
    const next = fields !== undefined && Object.hasOwn(fields, key) ? fields[key] : undefined;
    if (next === undefined) return undefined;
    schema = next;
  }
  return schema;
}

/**
 * Validate each override with the same rules as the file and return a new config with them applied.
 * Only keys inside sections that always exist can be overridden (not `grpc.tls.*`). Throws `ConfigError`.
 */
export function applyOverrides(config: TokenwardenConfig, overrides: readonly ConfigOverride[]): TokenwardenConfig {
  const result = structuredClone(config) as unknown as Mapping;
  const problems: ConfigIssue[] = [];
  for (const override of overrides) {
    const path = override.path.split('.');
    const parent = path.slice(0, -1).reduce<unknown>((node, key) => (isMapping(node) ? node[key] : undefined), result);
    const schema = schemaAt(path);
    const key = path[path.length - 1];
    if (schema === undefined || 'fields' in schema || !isMapping(parent) || key === undefined) {
      problems.push({ source: override.origin, path: override.path, message: 'cannot be overridden' });
      continue;
    }
    const issues: Issue[] = [];
    const value = schema.parse(override.value, path, issues);
    for (const issue of issues) problems.push({ source: override.origin, path: formatPath(issue.path), message: issue.message });
    if (issues.length === 0 && value !== undefined) parent[key] = value;
  }
  if (problems.length > 0) throw new ConfigError(problems);
  const merged = result as unknown as TokenwardenConfig;
  const origins = overrides.map((o) => o.origin).join(', ');
  const cross = crossFieldIssues(merged).map((issue) => ({ source: origins, path: formatPath(issue.path), message: issue.message }));
  if (cross.length > 0) throw new ConfigError(cross);
  return merged;
}
