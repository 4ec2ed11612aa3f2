/**
 * Finds the declarations of a hand-written .proto file line by line, with the
 * `// [Envoy >= 1.NN]` marker of each line. protobufjs drops comments on message lines, so the
 * compatibility check reads markers from here. Expects one declaration per line (as in
 * proto/envoy-wire); the caller checks that every element of the loaded Root was found.
 */
import { markerMinor } from './issues.js';

export interface ProtoDecl {
  kind: 'message' | 'enum' | 'service' | 'field' | 'enum_value' | 'method';
  /** Full name without leading dot, e.g. `envoy.service.ext_proc.v3.HttpBody.body`. */
  fullName: string;
  line: number;
  /** Minor version from a `[Envoy >= 1.NN]` marker on the line. */
  since?: number;
}

type Scope = { kind: 'message' | 'enum' | 'service' | 'oneof' | 'other'; name: string };

const OPEN = /^(message|enum|service|oneof)\s+(\w+)\s*\{/;
const FIELD = /^(?:repeated\s+|optional\s+)?(?:map\s*<[^>]+>|[\w.]+)\s+(\w+)\s*=\s*\d+/;
const ENUM_VALUE = /^(\w+)\s*=\s*-?\d+/;
const RPC = /^rpc\s+(\w+)\s*\(/;

export function scanProtoDeclarations(source: string): ProtoDecl[] {
  const decls: ProtoDecl[] = [];
  const stack: Scope[] = [];
  let pkg = '';
  const named = (name: string): string =>
    [pkg, ...stack.filter((s) => s.kind !== 'oneof' && s.kind !== 'other').map((s) => s.name), name]
      .filter((p) => p !== '')
      .join('.');

  source.split(/\r?\n/).forEach((raw, i) => {
    const commentAt = raw.indexOf('//');
    const code = (commentAt >= 0 ? raw.slice(0, commentAt) : raw).trim();
    const since = commentAt >= 0 ? markerMinor(raw.slice(commentAt)) : undefined;
    const add = (kind: ProtoDecl['kind'], name: string): void => {
      decls.push(since === undefined ? { kind, fullName: named(name), line: i + 1 } : { kind, fullName: named(name), line: i + 1, since });
    };
    const top = stack[stack.length - 1];
    const pkgMatch = /^package\s+([\w.]+)\s*;/.exec(code);
    const open = OPEN.exec(code);
    if (pkgMatch) pkg = pkgMatch[1] ?? '';
    else if (open) {
      const kind = open[1] as Scope['kind'];
      const name = open[2] ?? '';
      if (kind !== 'oneof') add(kind as ProtoDecl['kind'], name);
      stack.push({ kind, name });
    } else if (/^(reserved|option|import|syntax)\b/.test(code) || code === '') {
      // nothing declared
    } else if (top?.kind === 'enum') {
      const m = ENUM_VALUE.exec(code);
      if (m) add('enum_value', m[1] ?? '');
    } else if (top?.kind === 'service') {
      const m = RPC.exec(code);
      if (m) add('method', m[1] ?? '');
    } else if (top?.kind === 'message' || top?.kind === 'oneof') {
      const m = FIELD.exec(code);
      if (m) add('field', m[1] ?? '');
    }
    const opens = (code.match(/\{/g) ?? []).length - (open ? 1 : 0);
    for (let k = 0; k < opens; k++) stack.push({ kind: 'other', name: '' });
    const closes = (code.match(/\}/g) ?? []).length;
    for (let k = 0; k < closes; k++) stack.pop();
  });
  return decls;
}
