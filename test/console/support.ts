/**
 * Browser-test support: a real tokenwarden server (gRPC + admin with the console), fixture traffic
 * replayed through the Envoy emulator, and Debian's Chromium driven by playwright-core.
 */
import { existsSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium, type Browser, type Page } from 'playwright-core';
import { expect } from 'vitest';
import { parseConfig } from '../../src/config/load.js';
import type { TokenwardenConfig } from '../../src/config/types.js';
import { EnvoyEmulator, type ExchangeResult } from '../emulator/envoy.js';
import { SIDECAR } from '../support/envoy-modes.js';
import { loadFixtures, type Fixture } from '../support/fixtures.js';
import { binaryPath, CHROMIUM } from '../support/prerequisites.js';
import { startTestServer, type TestServer } from '../support/server.js';

export const CHROMIUM_PATH = binaryPath(CHROMIUM);
export const ARTIFACTS = fileURLToPath(new URL('../../artifacts/console/', import.meta.url));

/** Launches headless Chromium; a missing binary fails the suite (never a skip). */
export async function launchBrowser(): Promise<Browser> {
  if (!existsSync(CHROMIUM_PATH)) {
    throw new Error(`Chromium not found at ${CHROMIUM_PATH}: the console browser tests need it. Install Debian's package (apt-get install chromium) or set CHROMIUM_PATH.`);
  }
  return chromium.launch({
    executablePath: CHROMIUM_PATH,
    args: ['--headless=new', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
}

/** A page at 1280×800 that records uncaught errors and console errors (every page must have none). */
export async function newPage(browser: Browser): Promise<{ page: Page; problems: string[] }> {
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 }, acceptDownloads: true });
  const page = await context.newPage();
  // Fail fast: every console action answers in well under a second.
  page.setDefaultTimeout(5000);
  const problems: string[] = [];
  page.on('pageerror', (err) => problems.push(`page error: ${err.message}`));
  page.on('console', (msg) => {
    // Failed API calls are shown in the page; the browser also logs them as resource errors.
    if (msg.type() === 'error' && !msg.text().startsWith('Failed to load resource')) problems.push(`console error: ${msg.text()}`);
  });
  return { page, problems };
}

export async function screenshot(page: Page, name: string): Promise<void> {
  mkdirSync(ARTIFACTS, { recursive: true });
  await page.screenshot({ path: path.join(ARTIFACTS, `${name}.png`), fullPage: true });
}

/**
 * Starts the server with the admin API and console on a free loopback port. `adminYaml`: an
 * `admin:` section parsed as the config file would be (tokens and roles).
 */
export async function startConsoleServer(adminYaml = '', edit: (c: TokenwardenConfig) => void = () => {}): Promise<TestServer & { base: string }> {
  const parsed = adminYaml ? parseConfig(adminYaml, 'console.test.yaml', {}) : null;
  const srv = await startTestServer((c) => {
    if (parsed) c.admin = parsed.admin;
    c.admin.address = '127.0.0.1:0';
    // Catalog and API budgets are re-read quickly, so a change made in the console applies within the test.
    c.governance.registry_poll_ms = 100;
    edit(c);
  });
  return Object.assign(srv, { base: `http://${srv.adminAddress}` });
}

const fixtures = loadFixtures();

export function fixture(name: string): Fixture {
  const f = fixtures.find((x) => x.name === name);
  if (!f) throw new Error(`no fixture ${name}`);
  return f;
}

let sequence = 0;

/** Replays a recorded exchange through the emulated Envoy sidecar, as `consumer`. */
export function replay(envoy: EnvoyEmulator, name: string, consumer: string): Promise<ExchangeResult> {
  const fx = fixture(name);
  const headers: [string, string][] = [
    ...fx.request.headers.filter(([k]) => k !== 'x-consumer-id' && k !== 'x-request-id'),
    ['x-consumer-id', consumer],
    ['x-request-id', `console-test-${process.pid}-${++sequence}`],
  ];
  return envoy.exchange({ request: { headers, body_chunks: fx.request.body_chunks }, upstream: { headers: fx.response.headers, body_chunks: fx.response.body_chunks } });
}

export function sidecar(srv: TestServer): EnvoyEmulator {
  return new EnvoyEmulator(srv.address, SIDECAR);
}

/** Signs in through the login page. */
export async function login(page: Page, base: string, token: string): Promise<void> {
  await page.goto(`${base}/console/#/login`);
  await page.getByLabel('Admin token').fill(token);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await expect.poll(() => page.url()).toContain('#/dashboard');
}

/** The admin API as a script would call it. */
export async function apiCall(base: string, token: string, method: string, p: string, body?: unknown): Promise<{ status: number; body: any }> {
  const res = await fetch(base + p, {
    method,
    headers: { authorization: `Bearer ${token}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  const text = await res.text();
  return { status: res.status, body: text === '' ? null : text.startsWith('{') ? JSON.parse(text) : text };
}
