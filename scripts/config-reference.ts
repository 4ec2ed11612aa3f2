/**
 * Renders the README's configuration reference tables from the key declarations in src/config/
 * (config-schema.ts, telemetry-schema.ts, budgets-schema.ts, catalog-schema.ts): one row per declared key with its path, type, default and
 * doc string. Each table sits between `<!-- config-reference:start SECTION -->` and
 * `<!-- config-reference:end SECTION -->` in README.md; the prose around them is written by hand.
 *
 *   npx tsx scripts/config-reference.ts           # print the tables
 *   npx tsx scripts/config-reference.ts --check   # exit 1 when README.md is stale
 *   npx tsx scripts/config-reference.ts --write   # update README.md
 *
 * test/config-reference.test.ts fails when README.md differs from what this renders.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { configSchema } from '../src/config/config-schema.js';
import type { Declared, ListSchema, Schema } from '../src/config/schema.js';

export const README_PATH = fileURLToPath(new URL('../README.md', import.meta.url));

type AnySchema = Schema<unknown> & {
  key?: Declared<unknown>['key'];
  section?: true;
  fields?: Record<string, Schema<unknown>>;
  item?: Schema<unknown>;
  /** A mapping of named entries (`mapOf`): its values' keys, under the placeholder. */
  values?: AnySchema;
  placeholder?: string;
};

const code = (text: string): string => `\`${text}\``;

function formatBytes(bytes: number): string {
  for (const [unit, size] of [['GiB', 1024 ** 3], ['MiB', 1024 ** 2], ['KiB', 1024]] as const) {
    if (bytes % size === 0) return code(`${bytes / size}${unit}`);
  }
  return code(String(bytes));
}

function formatDefault(schema: AnySchema, type: string): string {
  const declared = schema.key;
  if (declared?.defaultText !== undefined) return declared.defaultText;
  const value = declared?.default;
  if (value === undefined) return /required/.test(type) ? '—' : 'absent';
  if (typeof value === 'number' && schema.label === 'size') return formatBytes(value);
  if (value === '') return code('""');
  if (Array.isArray(value) || typeof value === 'object') return code(JSON.stringify(value));
  return code(String(value));
}

function rows(fields: Record<string, Schema<unknown>>, prefix: string): string[] {
  const out: string[] = [];
  for (const [name, field] of Object.entries(fields)) {
    const schema = field as AnySchema;
    const path = `${prefix}${name}`;
    if (schema.section === true && schema.fields !== undefined) {
      out.push(...rows(schema.fields, `${path}.`));
      continue;
    }
    if (schema.key === undefined) continue;
    const type = schema.key.type ?? schema.label ?? 'value';
    out.push(`| ${code(path)} | ${type} | ${formatDefault(schema, type)} | ${schema.key.doc} |`);
    if (schema.fields !== undefined) out.push(...rows(schema.fields, `${path}.`));
    const item = (schema as Partial<ListSchema<unknown>>).item as AnySchema | undefined;
    if (item?.fields !== undefined) out.push(...rows(item.fields, `${path}[].`));
    if (schema.values?.fields !== undefined) out.push(...rows(schema.values.fields, `${path}.${schema.placeholder ?? '<name>'}.`));
  }
  return out;
}

/**
 * The generated table of one top-level key: a section (`grpc`, `store`, ...) lists its keys, a
 * declared list or mapping (`budgets`, `owners`, `policies`, ...) itself and then its entries' keys.
 */
export function renderSection(name: string): string {
  const schema = configSchema.fields[name as keyof typeof configSchema.fields] as AnySchema | undefined;
  const body =
    schema?.section === true && schema.fields !== undefined ? rows(schema.fields, `${name}.`) : schema?.key !== undefined ? rows({ [name]: schema }, '') : undefined;
  if (body === undefined) throw new Error(`${name} is not a declared configuration key`);
  return ['| key | type | default | meaning |', '|---|---|---|---|', ...body].join('\n');
}

/** The top-level keys with a generated table: every section and every declared key. */
export function declaredSections(): string[] {
  return Object.entries(configSchema.fields as Record<string, AnySchema>)
    .filter(([, schema]) => schema.section === true || schema.key !== undefined)
    .map(([name]) => name);
}

const MARKERS = /(<!-- config-reference:start (\S+) -->\n)[\s\S]*?(<!-- config-reference:end \2 -->)/g;

/** README text with every marked table re-rendered. */
export function renderReadme(readme: string): string {
  return readme.replace(MARKERS, (_match, start: string, name: string, end: string) => `${start}${renderSection(name)}\n${end}`);
}

/** The sections that have markers in the README. */
export function markedSections(readme: string): string[] {
  return [...readme.matchAll(MARKERS)].map((match) => match[2] ?? '');
}

function main(args: readonly string[]): number {
  const readme = readFileSync(README_PATH, 'utf8');
  const rendered = renderReadme(readme);
  if (args.includes('--write')) {
    if (rendered !== readme) writeFileSync(README_PATH, rendered);
    console.log(rendered === readme ? 'README.md is up to date' : 'README.md updated');
    return 0;
  }
  if (args.includes('--check')) {
    if (rendered === readme) return 0;
    console.error('README.md configuration reference is stale: run `npx tsx scripts/config-reference.ts --write`');
    return 1;
  }
  for (const name of markedSections(readme)) console.log(`## ${name}\n\n${renderSection(name)}\n`);
  return 0;
}

if (process.argv[1] !== undefined && fileURLToPath(import.meta.url) === process.argv[1]) process.exitCode = main(process.argv.slice(2));
