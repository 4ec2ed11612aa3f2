/**
 * What is in force now, for definitions that come from two places: the config file (replaced on a
 * hot reload) and the admin API (kept in a registry that every sidecar polls). Budgets and the
 * catalog are both this: the effective view is rebuilt from the two whenever either changes, the
 * config winning on the same id (the merge is the caller's `build`).
 */

/** A registry of API-defined definitions: a version that moves with every change, and a snapshot. */
export interface VersionedRegistry<D> {
  version(): Promise<number>;
  snapshot(): Promise<D & { version: number }>;
}

export interface LiveSetOptions<D, V> {
  /** The definitions from the config file at start. */
  config: D;
  /** No API definitions yet (before the first poll). */
  empty: D;
  registry: VersionedRegistry<D>;
  /** The effective view of config and API definitions; may throw on definitions it refuses. */
  build(config: D, api: D): V;
}

export class LiveSet<D, V> {
  private configDefs: D;
  private apiDefs: D;
  private registryVersion = -1;
  private current: V;
  private timer: NodeJS.Timeout | undefined;

  constructor(private readonly opts: LiveSetOptions<D, V>) {
    this.configDefs = opts.config;
    this.apiDefs = opts.empty;
    this.current = opts.build(this.configDefs, this.apiDefs);
  }

  /** The effective view in force (read it per request: it changes on reload and refresh). */
  get view(): V {
    return this.current;
  }

  /** The config file's definitions in force. */
  get config(): D {
    return this.configDefs;
  }

  /** Replaces the config file's definitions; when `build` throws, the current ones stay in force. */
  reload(config: D): void {
    this.current = this.opts.build(config, this.apiDefs);
    this.configDefs = config;
  }

  /** Re-reads the registry when its version moved (one cheap call when it did not). */
  async refresh(): Promise<void> {
    const version = await this.opts.registry.version();
    if (version === this.registryVersion) return;
    const { version: snapshotVersion, ...api } = await this.opts.registry.snapshot();
    this.apiDefs = api as D;
    this.current = this.opts.build(this.configDefs, this.apiDefs);
    this.registryVersion = snapshotVersion;
  }

  /** A first refresh now, then polling; a failed refresh is reported and retried at the next tick. */
  async start(intervalMs: number, failed: (err: unknown) => void): Promise<void> {
    await this.refresh().catch(failed);
    this.startPolling(intervalMs, failed);
  }

  /** Refreshes every `intervalMs` until stopPolling(); a failed refresh is reported and retried at the next tick. */
  startPolling(intervalMs: number, failed: (err: unknown) => void): void {
    this.stopPolling();
    this.timer = setInterval(() => void this.refresh().catch(failed), intervalMs);
    this.timer.unref();
  }

  stopPolling(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }
}

/** How many definitions of each kind, e.g. `{ budgets: 3, templates: 1 }` (for logs). */
export function definitionCounts(definitions: object): Record<string, number> {
  return Object.fromEntries(Object.entries(definitions).map(([kind, list]) => [kind, Array.isArray(list) ? list.length : 0]));
}
