/**
 * Loads the provider fixtures (test/fixtures/providers: real-format traffic with expected results,
 * described in its README) for table-driven tests.
 */
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Usage } from '../../src/domain.js';

export const FIXTURE_DIR = fileURLToPath(new URL('../fixtures/providers/', import.meta.url));

/** The JSON text of fixture `name`. */
export function fixtureText(name: string): string {
  return readFileSync(path.join(FIXTURE_DIR, `${name}.json`), 'utf8');
}

export interface FixtureMessage {
  headers: [string, string][];
  body_chunks: Buffer[];
}

export interface Fixture {
  name: string;
  description: string;
  request: FixtureMessage;
  response: FixtureMessage;
  expected: {
    provider: string;
    api: string | null;
    model: string | null;
    response_model: string | null;
    stream: boolean;
    usage: Usage;
    status: number;
    error: string | null;
  };
}

interface RawMessage {
  headers: [string, string][];
  body_chunks: string[];
}

function message(raw: RawMessage): FixtureMessage {
  return { headers: raw.headers, body_chunks: raw.body_chunks.map((c) => Buffer.from(c, 'base64')) };
}

export function loadFixtures(): Fixture[] {
  return readdirSync(FIXTURE_DIR)
    .filter((f) => f.endsWith('.json'))
    .map((f) => f.slice(0, -'.json'.length))
    .sort()
    .map((name) => {
      const raw = JSON.parse(fixtureText(name)) as Omit<Fixture, 'request' | 'response'> & {
        request: RawMessage;
        response: RawMessage;
      };
      return { ...raw, request: message(raw.request), response: message(raw.response) };
    });
}

export function headerValue(m: FixtureMessage, name: string): string | undefined {
  return m.headers.find(([k]) => k === name)?.[1];
}
