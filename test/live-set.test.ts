/** LiveSet: config + API registry → the view in force, on reload, refresh and poll. */
import { describe, expect, it } from 'vitest';
import { LiveSet, type VersionedRegistry } from '../src/live/live-set.js';

interface Defs {
  ids: string[];
}

/** A registry whose snapshot calls are counted. */
class Registry implements VersionedRegistry<Defs> {
  snapshots = 0;
  constructor(
    public ver = 0,
    public ids: string[] = [],
  ) {}
  async version(): Promise<number> {
    return this.ver;
  }
  async snapshot(): Promise<Defs & { version: number }> {
    this.snapshots++;
    return { version: this.ver, ids: [...this.ids] };
  }
}

/** Config ids first, then API ids not shadowed; a duplicate config id is refused. */
function build(config: Defs, api: Defs): string[] {
  if (new Set(config.ids).size !== config.ids.length) throw new Error('duplicate id');
  return [...config.ids, ...api.ids.filter((id) => !config.ids.includes(id))];
}

describe('LiveSet', () => {
  it('merges the config with the registry, and reads a snapshot only when the version moved', async () => {
    const registry = new Registry(1, ['b', 'c']);
    const live = new LiveSet({ config: { ids: ['a', 'b'] }, empty: { ids: [] }, registry, build });
    expect(live.view).toEqual(['a', 'b']);
    await live.refresh();
    expect(live.view).toEqual(['a', 'b', 'c']);
    await live.refresh();
    expect(registry.snapshots).toBe(1);
    registry.ver = 2;
    registry.ids = ['d'];
    await live.refresh();
    expect(live.view).toEqual(['a', 'b', 'd']);
  });

  it('keeps the definitions in force when a reload is refused', async () => {
    const live = new LiveSet({ config: { ids: ['a'] }, empty: { ids: [] }, registry: new Registry(1, ['x']), build });
    await live.refresh();
    expect(() => live.reload({ ids: ['b', 'b'] })).toThrow('duplicate id');
    expect(live.view).toEqual(['a', 'x']);
    expect(live.config).toEqual({ ids: ['a'] });
    live.reload({ ids: ['b'] });
    expect(live.view).toEqual(['b', 'x']);
  });

  it('polls the registry until stopped, reporting failures', async () => {
    const registry = new Registry(1, ['x']);
    const failures: unknown[] = [];
    let fail = true;
    registry.version = async () => {
      if (fail) throw new Error('store down');
      return registry.ver;
    };
    const live = new LiveSet({ config: { ids: [] }, empty: { ids: [] }, registry, build });
    live.startPolling(10, (e) => failures.push(e));
    await expect.poll(() => failures.length).toBeGreaterThan(0);
    fail = false;
    await expect.poll(() => live.view).toEqual(['x']);
    live.stopPolling();
    registry.ver = 2;
    registry.ids = ['y'];
    await new Promise((r) => setTimeout(r, 50));
    expect(live.view).toEqual(['x']);
  });
});
