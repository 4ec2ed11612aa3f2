/**
 * Compares tokenwarden's wire definitions (a protobufjs Root) with Envoy's official protos: every
 * message, field, enum value and RPC must exist officially with the same number, type, label and
 * oneof — except elements marked `[Envoy >= 1.NN]`, which must be absent from the official
 * snapshot so the marker stays honest.
 */
import protobuf from 'protobufjs';
import type { ProtoDecl } from './proto-decls.js';
import { SNAPSHOT_MINOR } from './official-protos.js';

function bare(o: protobuf.ReflectionObject): string {
  return o.fullName.replace(/^\./, '');
}

function lookup<T extends protobuf.ReflectionObject>(root: protobuf.Root, name: string, kind: new (...a: never[]) => T): T | undefined {
  const found = root.lookup(name);
  return found instanceof kind ? found : undefined;
}

/** Type of a field as a comparable string: resolved full name for messages/enums, else the scalar. */
function fieldType(f: protobuf.Field): string {
  return f.resolvedType ? bare(f.resolvedType) : f.type;
}

function shape(f: protobuf.Field): string {
  if (f instanceof protobuf.MapField) return `map<${f.keyType}, ${fieldType(f)}>`;
  return `${f.repeated ? 'repeated ' : ''}${fieldType(f)}`;
}

/** Types, enums and services declared in `ns` and below. */
function* declared(ns: protobuf.NamespaceBase): Generator<protobuf.Type | protobuf.Enum | protobuf.Service> {
  for (const o of ns.nestedArray) {
    if (o instanceof protobuf.Type || o instanceof protobuf.Enum || o instanceof protobuf.Service) yield o;
    if (o instanceof protobuf.Namespace) yield* declared(o);
  }
}

export function compareWithOfficial(
  ours: protobuf.Root,
  official: protobuf.Root,
  decls: readonly ProtoDecl[],
  packages: readonly string[],
): string[] {
  const problems: string[] = [];
  const byName = new Map(decls.map((d) => [d.fullName, d]));

  /** Returns false when the element is marked newer (and then checks it is absent officially). */
  const current = (name: string, officialHas: boolean): boolean => {
    const decl = byName.get(name);
    if (!decl) {
      problems.push(`${name}: declaration not found in the .proto sources (one declaration per line expected)`);
      return false;
    }
    if (decl.since === undefined) {
      if (!officialHas) problems.push(`${name}: not in the official Envoy 1.${SNAPSHOT_MINOR} protos and not marked [Envoy >= 1.NN]`);
      return officialHas;
    }
    if (decl.since <= SNAPSHOT_MINOR) problems.push(`${name}: marker 1.${decl.since} is not newer than the snapshot (1.${SNAPSHOT_MINOR})`);
    if (officialHas) problems.push(`${name}: marked [Envoy >= 1.${decl.since}] but the Envoy 1.${SNAPSHOT_MINOR} protos already have it`);
    return false;
  };

  for (const pkg of packages) {
    const ns = ours.lookup(pkg);
    if (!(ns instanceof protobuf.Namespace)) continue;
    for (const el of declared(ns)) {
      const name = bare(el);
      if (el instanceof protobuf.Type) {
        const off = lookup(official, name, protobuf.Type);
        if (!current(name, off !== undefined) || !off) continue;
        for (const f of el.fieldsArray) {
          const offField = off.fields[f.name];
          const numberTaken = off.fieldsById[f.id];
          if (!current(`${name}.${f.name}`, offField !== undefined || numberTaken !== undefined) || !offField) {
            if (!offField && numberTaken) problems.push(`${name}.${f.name}: number ${f.id} is "${numberTaken.name}" officially`);
            continue;
          }
          if (offField.id !== f.id) problems.push(`${name}.${f.name}: number ${f.id}, official ${offField.id}`);
          if (shape(offField) !== shape(f)) problems.push(`${name}.${f.name}: ${shape(f)}, official ${shape(offField)}`);
          const oneof = f.partOf?.name;
          const offOneof = offField.partOf?.name;
          if (oneof !== offOneof) problems.push(`${name}.${f.name}: oneof ${oneof ?? '(none)'}, official ${offOneof ?? '(none)'}`);
        }
      } else if (el instanceof protobuf.Enum) {
        const off = lookup(official, name, protobuf.Enum);
        if (!current(name, off !== undefined) || !off) continue;
        for (const [key, num] of Object.entries(el.values)) {
          const offNum = off.values[key];
          const numberTaken = off.valuesById[num];
          if (!current(`${name}.${key}`, offNum !== undefined || numberTaken !== undefined) || offNum === undefined) continue;
          if (offNum !== num) problems.push(`${name}.${key}: ${num}, official ${offNum}`);
        }
      } else {
        const off = lookup(official, name, protobuf.Service);
        if (!current(name, off !== undefined) || !off) continue;
        for (const m of el.methodsArray) {
          const offM = off.methods[m.name];
          if (!current(`${name}.${m.name}`, offM !== undefined) || !offM) continue;
          const sig = (x: protobuf.Method): string => {
            const req = `${x.requestStream ? 'stream ' : ''}${bare(x.resolvedRequestType ?? x)}`;
            return `${req} -> ${x.responseStream ? 'stream ' : ''}${bare(x.resolvedResponseType ?? x)}`;
          };
          if (sig(m) !== sig(offM)) problems.push(`${name}.${m.name}: ${sig(m)}, official ${sig(offM)}`);
        }
      }
    }
  }
  return problems;
}
