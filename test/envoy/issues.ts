/** The result type of the Envoy config validator and the YAML path notation it uses. */

export interface ConfigIssue {
  /** YAML path, e.g. `static_resources.clusters[0].typed_extension_protocol_options["envoy.x"]`. */
  path: string;
  /** 1-based line in the YAML source, when known. */
  line?: number;
  message: string;
}

const PLAIN_KEY = /^[A-Za-z_@][\w@]*$/;

/** Path of a mapping key or sequence index below `parent` ('' is the document root). */
export function childPath(parent: string, key: string | number): string {
  if (typeof key === 'number') return `${parent}[${key}]`;
  if (!PLAIN_KEY.test(key)) return `${parent}[${JSON.stringify(key)}]`;
  return parent === '' ? key : `${parent}.${key}`;
}

/** `[Envoy >= 1.NN]` markers: a field, enum value or type first released in Envoy 1.NN. */
const MARKER = /\[Envoy >= 1\.(\d+)\]/;

/** The minor version named by a marker in a comment (text after `#` or `//`), if any. */
export function markerMinor(comment: string): number | undefined {
  const m = MARKER.exec(comment);
  return m ? Number(m[1]) : undefined;
}

const LAST_SEGMENT = /(?:\["(?:[^"\\]|\\.)*"\]|\[\d+\]|\.[^.[\]]+)$/;

/** The line of `path`, or of its closest ancestor that has one (for keys that are absent). */
export function nearestLine(lines: ReadonlyMap<string, number>, path: string): number | undefined {
  let p = path;
  for (;;) {
    const line = lines.get(p);
    if (line !== undefined) return line;
    const parent = p.replace(LAST_SEGMENT, '');
    if (parent === p) return undefined;
    p = parent;
  }
}
