/**
 * An ordered, byte-exact header map modelled on Envoy's HeaderMapImpl: keys are lower-case,
 * pseudo-headers stay in front, values are raw bytes (ext_proc carries them in `raw_value`).
 */

export type HeaderValueInput = string | Uint8Array;
export type HeaderInput = Iterable<readonly [string, HeaderValueInput]>;

function toBytes(value: HeaderValueInput): Buffer {
  return typeof value === 'string' ? Buffer.from(value, 'utf8') : Buffer.from(value);
}

const isPseudo = (key: string): boolean => key.startsWith(':');

export class HeaderList {
  private readonly list: Array<[string, Buffer]> = [];

  constructor(entries?: HeaderInput) {
    if (entries) for (const [k, v] of entries) this.add(k, v);
  }

  /** Build a request header map the way Envoy's HTTP/1 codec does: `host` becomes `:authority`. */
  static request(entries: HeaderInput): HeaderList {
    const h = new HeaderList(entries);
    const host = h.getRaw('host');
    if (host !== undefined && !h.has(':authority')) {
      h.remove('host');
      h.add(':authority', host);
    }
    return h;
  }

  clone(): HeaderList {
    const copy = new HeaderList();
    for (const [k, v] of this.list) copy.list.push([k, Buffer.from(v)]);
    return copy;
  }

  /** Adds another value; pseudo-headers are inserted after the existing pseudo-headers. */
  add(key: string, value: HeaderValueInput): void {
    const k = key.toLowerCase();
    const entry: [string, Buffer] = [k, toBytes(value)];
    if (isPseudo(k)) {
      const firstRegular = this.list.findIndex(([name]) => !isPseudo(name));
      if (firstRegular >= 0) {
        this.list.splice(firstRegular, 0, entry);
        return;
      }
    }
    this.list.push(entry);
  }

  /** Replaces every value of `key` with one value, keeping the position of the first one. */
  set(key: string, value: HeaderValueInput): void {
    const k = key.toLowerCase();
    const first = this.list.findIndex(([name]) => name === k);
    if (first < 0) {
      this.add(k, value);
      return;
    }
    this.list[first] = [k, toBytes(value)];
    for (let i = this.list.length - 1; i > first; i--) {
      if (this.list[i]![0] === k) this.list.splice(i, 1);
    }
  }

  remove(key: string): void {
    const k = key.toLowerCase();
    for (let i = this.list.length - 1; i >= 0; i--) {
      if (this.list[i]![0] === k) this.list.splice(i, 1);
    }
  }

  has(key: string): boolean {
    const k = key.toLowerCase();
    return this.list.some(([name]) => name === k);
  }

  /** First value as UTF-8 text. */
  get(key: string): string | undefined {
    return this.getRaw(key)?.toString('utf8');
  }

  getRaw(key: string): Buffer | undefined {
    const k = key.toLowerCase();
    return this.list.find(([name]) => name === k)?.[1];
  }

  getAll(key: string): string[] {
    const k = key.toLowerCase();
    return this.list.filter(([name]) => name === k).map(([, v]) => v.toString('utf8'));
  }

  /** Entries in map order with raw byte values. */
  entries(): Array<[string, Buffer]> {
    return this.list.map(([k, v]) => [k, v]);
  }

  /** Entries as UTF-8 text, convenient for assertions. */
  toArray(): Array<[string, string]> {
    return this.list.map(([k, v]) => [k, v.toString('utf8')]);
  }

  /** One property per key; repeated values are joined with ",". */
  toObject(): Record<string, string> {
    const out: Record<string, string> = {};
    for (const [k, v] of this.list) {
      const s = v.toString('utf8');
      out[k] = k in out ? `${out[k]},${s}` : s;
    }
    return out;
  }

  get size(): number {
    return this.list.length;
  }

  /** Envoy's HeaderMap::byteSize(): sum of key and value lengths. */
  byteSize(): number {
    return this.list.reduce((n, [k, v]) => n + Buffer.byteLength(k) + v.length, 0);
  }
}
