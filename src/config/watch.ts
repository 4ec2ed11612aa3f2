/**
 * Hot reload of the configuration file: noticing that the file changed (`watchConfig`), and what a
 * changed file means for a running server (`diffSections`, `createReloader`). Only budgets, budget
 * templates and the catalog sections are applied live; every other section needs a restart and is
 * reported as such.
 */
import { createHash } from 'node:crypto';
import { readFileSync, statSync, watch, type FSWatcher, type Stats } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { Budget, BudgetTemplate } from '../governance/types.js';
import type { CatalogDefinitions } from '../catalog/catalog.js';
import type { Logger } from '../log.js';
import { ConfigError, formatIssue } from './errors.js';
import { MAX_CONFIG_FILE_BYTES } from './load.js';
import type { TokenwardenConfig } from './types.js';

export const DEFAULT_POLL_INTERVAL_MS = 2_000;
/** Editors often write a file in several steps; a burst of change events leads to one check. */
const SETTLE_MS = 100;

/**
 * What the file at `path` holds, as a string that changes when its content does. Unreadable, missing,
 * oversized and non-regular files get a fingerprint of their own, so that the file coming back (or
 * becoming usable) counts as a change, and an unusable file is reported once, not on every poll.
 * Pipes and devices are never read: reading them again would block or consume their data.
 */
export function fileFingerprint(path: string): string {
  try {
    const shape = shapeFingerprint(statSync(path));
    if (shape !== undefined) return shape;
    return contentFingerprint(readFileSync(path));
  } catch (error) {
    return errorFingerprint(error);
  }
}

async function fileFingerprintAsync(path: string): Promise<string> {
  try {
    const shape = shapeFingerprint(await stat(path));
    if (shape !== undefined) return shape;
    return contentFingerprint(await readFile(path));
  } catch (error) {
    return errorFingerprint(error);
  }
}

/** A fingerprint for files whose content is not read (stat follows symlinks, as reading does). */
function shapeFingerprint(stats: Stats): string | undefined {
  if (!stats.isFile()) return `not-a-file:${stats.mode}`;
  if (stats.size > MAX_CONFIG_FILE_BYTES) return `too-large:${stats.size}:${stats.mtimeMs}`;
  return undefined;
}

const contentFingerprint = (content: Buffer): string => `sha256:${createHash('sha256').update(content).digest('hex')}`;

const errorFingerprint = (error: unknown): string => `error:${String((error as NodeJS.ErrnoException).code ?? error)}`;

export interface WatchOptions {
  /** How often the file's content is compared with the last seen (the fallback that always works). */
  intervalMs?: number;
  /**
   * The fingerprint (see `fileFingerprint`) of the content the caller already loaded. Taken before
   * loading, it makes a change made while the server was starting count too. Default: read now.
   */
  baseline?: string;
}

/**
 * Calls `onChange` (which must not throw) whenever the content of the file at `path` changes, until
 * the returned function is called. Robust to the ways files are replaced: in-place writes, editors'
 * write-and-rename, and Kubernetes ConfigMap volumes, which swap a symlink to a new directory.
 * Polling the content hash catches all of them (also on file systems without change events);
 * `fs.watch` on the file's directory only makes the common cases faster. Keeps no process alive.
 */
export function watchConfig(path: string, onChange: () => void, options: WatchOptions = {}): () => void {
  let last = options.baseline ?? fileFingerprint(path);
  let stopped = false;
  let checking = false;
  let checkAgain = false;

  const check = async (): Promise<void> => {
    // One check at a time: a second request while one runs is folded into one more pass.
    if (checking) {
      checkAgain = true;
      return;
    }
    checking = true;
    try {
      do {
        checkAgain = false;
        const now = await fileFingerprintAsync(path);
        if (stopped) return;
        if (now !== last) {
          last = now;
          onChange();
        }
      } while (checkAgain);
    } finally {
      checking = false;
    }
  };

  const poll = setInterval(() => void check(), options.intervalMs ?? DEFAULT_POLL_INTERVAL_MS);
  poll.unref();

  let settle: NodeJS.Timeout | undefined;
  const soon = (): void => {
    clearTimeout(settle);
    settle = setTimeout(() => void check(), SETTLE_MS);
    settle.unref();
  };
  // The directory, not the file: a watch on the file itself is lost when the file is replaced by a
  // rename, and a ConfigMap update only touches the `..data` symlink next to it.
  let watcher: FSWatcher | undefined;
  try {
    watcher = watch(dirname(path), { persistent: false }, soon);
    watcher.on('error', () => watcher?.close());
  } catch {
    // No change events here (e.g. inotify limits reached): polling alone still sees every change.
    watcher = undefined;
  }

  return () => {
    stopped = true;
    clearInterval(poll);
    clearTimeout(settle);
    watcher?.close();
  };
}

/** Sections a reload applies to the running server; the others take effect on restart. */
export const LIVE_SECTIONS: readonly string[] = ['budgets', 'budget_templates', 'owners', 'consumers', 'consumer_rules', 'resources', 'policies'];

/** The catalog sections of a configuration, as the catalog model holds them. */
export function configCatalog(config: TokenwardenConfig): CatalogDefinitions {
  return {
    owners: config.owners,
    consumers: config.consumers,
    consumerRules: config.consumer_rules,
    resources: config.resources,
    policies: config.policies,
  };
}

export interface SectionDiff {
  /** Changed sections that a reload applies. */
  live: string[];
  /** Changed sections that need a restart. */
  restart: string[];
}

/** Equality of configuration data: plain objects (whatever their prototype), arrays and scalars. */
function sameData(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return false;
  if (Array.isArray(a) !== Array.isArray(b)) return false;
  // A key whose value is undefined is the same as an absent key (optional fields).
  const keys = (value: object): string[] => Object.keys(value).filter((key) => (value as Record<string, unknown>)[key] !== undefined);
  const aKeys = keys(a);
  const bKeys = keys(b);
  if (aKeys.length !== bKeys.length) return false;
  return aKeys.every((key) => Object.hasOwn(b, key) && sameData((a as Record<string, unknown>)[key], (b as Record<string, unknown>)[key]));
}

/** Which top-level sections differ between two configurations, split into live and restart-only. */
export function diffSections(old: TokenwardenConfig, next: TokenwardenConfig): SectionDiff {
  const diff: SectionDiff = { live: [], restart: [] };
  const sections = new Set([...Object.keys(old), ...Object.keys(next)]);
  for (const section of sections) {
    if (sameData((old as unknown as Record<string, unknown>)[section], (next as unknown as Record<string, unknown>)[section])) continue;
    (LIVE_SECTIONS.includes(section) ? diff.live : diff.restart).push(section);
  }
  return diff;
}

/** applied: new budgets/templates/catalog in force; unchanged: nothing to apply; refused: old policy kept. */
export type ReloadResult = 'applied' | 'unchanged' | 'refused';

export interface ReloaderDeps {
  /** The configuration file, named in log lines. */
  file: string;
  /** The configuration the server runs with. */
  initial: TokenwardenConfig;
  /** Reads and validates the whole file as startup does (throws `ConfigError` when it is invalid). */
  load(): TokenwardenConfig;
  /** Puts budgets, templates and the catalog in force; throws, keeping the current ones, when it cannot. */
  apply(budgets: Budget[], templates: BudgetTemplate[], catalog: CatalogDefinitions): void;
  log: Logger;
  /** Told every result, e.g. to count it. */
  done?(result: ReloadResult): void;
}

/**
 * Returns `reload(trigger)`: re-read and re-validate the whole file, apply its budgets, templates
 * and catalog when any of them changed, and say which other changed sections wait for a restart. A file that would not
 * start the server is refused as a whole and the policy in force is kept. Never throws.
 */
export function createReloader(deps: ReloaderDeps): (trigger: string) => ReloadResult {
  const { file, log } = deps;
  let running = deps.initial;

  const refuse = (trigger: string, problems: string[]): ReloadResult => {
    log.error('configuration reload refused; the budgets, templates and catalog in force are kept', { file, trigger, problems });
    return 'refused';
  };

  const reload = (trigger: string): ReloadResult => {
    let next: TokenwardenConfig;
    try {
      next = deps.load();
    } catch (error) {
      return refuse(trigger, error instanceof ConfigError ? error.issues.map(formatIssue) : [error instanceof Error ? error.message : String(error)]);
    }
    const diff = diffSections(running, next);
    let result: ReloadResult = 'unchanged';
    if (diff.live.length > 0) {
      try {
        deps.apply(next.budgets, next.budget_templates, configCatalog(next));
      } catch (error) {
        return refuse(trigger, [error instanceof Error ? error.message : String(error)]);
      }
      const live = Object.fromEntries(LIVE_SECTIONS.map((section) => [section, next[section as keyof TokenwardenConfig]]));
      running = { ...running, ...live };
      result = 'applied';
      log.info('configuration reloaded; new budgets, templates and catalog in force', {
        file,
        trigger,
        sections: diff.live,
        budgets: next.budgets.length,
        templates: next.budget_templates.length,
        owners: next.owners.length,
        consumers: next.consumers.length,
        consumer_rules: next.consumer_rules.length,
        resources: next.resources.length,
        policies: next.policies.length,
      });
    } else {
      log.info('configuration re-read; budgets, templates and catalog unchanged', { file, trigger });
    }
    if (diff.restart.length > 0) {
      log.warn(`configuration sections changed that take effect only after a restart: ${diff.restart.join(', ')}`, {
        file,
        trigger,
        sections: diff.restart,
      });
    }
    return result;
  };

  return (trigger) => {
    const result = reload(trigger);
    deps.done?.(result);
    return result;
  };
}
