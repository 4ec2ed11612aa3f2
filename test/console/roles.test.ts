/**
 * Console roles in headless Chromium: named tokens from the config's admin.tokens. A viewer signs
 * in, sees every page with no write control, and the API refuses its writes anyway.
 */
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { EnvoyEmulator } from '../emulator/envoy.js';
import type { TestServer } from '../support/server.js';
import { apiCall, launchBrowser, login, newPage, replay, sidecar, startConsoleServer } from './support.js';

const ADMIN = 'roles-admin-token';
const VIEWER = 'roles-viewer-token';

let srv: TestServer & { base: string };
let envoy: EnvoyEmulator;
let browser: Browser;
let page: Page;
let problems: string[];

beforeAll(async () => {
  browser = await launchBrowser();
  srv = await startConsoleServer(`
admin:
  tokens:
    - { name: platform-ops, token: ${ADMIN}, role: admin }
    - { name: finops-auditor, token: ${VIEWER}, role: viewer }
`);
  envoy = sidecar(srv);
  // Something on every page: a consumer, an owner, a budget, a template, a policy.
  expect((await replay(envoy, 'openai_chat_completions_basic', 'checkout-service')).downstream.status).toBe(200);
  await srv.server.flush();
  const admin = (method: string, path: string, body: unknown) => apiCall(srv.base, ADMIN, method, path, body);
  expect((await admin('POST', '/api/v1/owners', { id: 'payments', name: 'Payments' })).status).toBe(201);
  expect((await admin('PUT', '/api/v1/consumers/checkout-service', { status: 'added', owner: 'payments' })).status).toBeLessThan(300);
  expect((await admin('POST', '/api/v1/budgets', { id: 'team-cap', mode: 'monitor', limits: [{ requests: 100, per: 'day' }] })).status).toBe(201);
  expect((await admin('POST', '/api/v1/budget-templates', { id: 'per-app', group_by: 'consumer', limits: [{ cost_usd: 5, per: 'month' }] })).status).toBe(201);
  expect((await admin('PUT', '/api/v1/policies/payments', { mode: 'monitor', allow: ['openai/*'] })).status).toBeLessThan(300);
  ({ page, problems } = await newPage(browser));
});

afterAll(async () => {
  await browser?.close();
  await envoy?.close();
  await srv?.stop();
});

async function open(route: string): Promise<void> {
  await page.goto('about:blank');
  await page.goto(`${srv.base}/console/#/${route}`);
  await page.locator('main h1').waitFor();
  await expect.poll(() => page.locator('[aria-busy="true"]').count()).toBe(0);
}

/** Buttons and switches that would change something. */
const WRITE_CONTROLS = /^(New |Bulk resolve|Resolve…|Reset|Edit|Delete|Forget|Save|Add )/;

describe('console roles', () => {
  it('a viewer token signs in as a viewer and no page shows a write control', async () => {
    await login(page, srv.base, VIEWER);
    expect(await page.getByTestId('user-name').textContent()).toBe('finops-auditor');
    expect(await page.locator('.topbar .badge').textContent()).toBe('viewer');

    const expectations: [string, string][] = [
      ['owners', 'Payments'],
      ['consumers', 'checkout-service'],
      ['resources', 'openai/gpt-4o-mini'],
      ['policies', 'openai/*'],
      ['budgets', 'team-cap'],
      ['templates', 'per-app'],
    ];
    for (const [route, content] of expectations) {
      await open(route);
      expect(await page.locator('main').textContent(), route).toContain(content);
      const buttons = await page.locator('main button').allTextContents();
      expect(buttons.filter((b) => WRITE_CONTROLS.test(b.trim())), route).toEqual([]);
      expect(await page.locator('main [role="switch"]').count(), route).toBe(0);
      expect(await page.locator('main input[type="radio"]:not([disabled]), main textarea:not([disabled])').count(), route).toBe(0);
    }
    expect(problems).toEqual([]);
  });

  it('the API refuses a viewer’s writes even without the console', async () => {
    const refused = await apiCall(srv.base, VIEWER, 'POST', '/api/v1/owners', { id: 'rogue', name: 'Rogue' });
    expect(refused.status).toBe(403);
    expect(refused.body.error.code).toBe('forbidden');
    expect((await apiCall(srv.base, VIEWER, 'GET', '/api/v1/owners')).body.items.map((o: any) => o.id)).toEqual(['payments']);
  });

  it('an admin token signs in by name with write controls', async () => {
    await page.goto(`${srv.base}/console/#/login`);
    await login(page, srv.base, ADMIN);
    expect(await page.getByTestId('user-name').textContent()).toBe('platform-ops');
    await open('owners');
    expect(await page.getByRole('button', { name: 'New owner' }).count()).toBe(1);
  });
});
