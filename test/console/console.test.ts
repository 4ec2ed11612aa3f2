/**
 * The web console end to end in headless Chromium, against a real server with traffic replayed
 * through the Envoy emulator: discovery shows up, a consumer is resolved to an owner, a budget made
 * in the UI is enforced, an unsanctioned model is rejected under an enforce policy, the FOCUS
 * export downloads, and every page renders without errors (screenshots in artifacts/console/).
 */
import { readFileSync } from 'node:fs';
import type { Browser, Download, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { EnvoyEmulator } from '../emulator/envoy.js';
import type { TestServer } from '../support/server.js';
import { eventually } from '../support/wait.js';
import { apiCall, launchBrowser, login, newPage, replay, screenshot, sidecar, startConsoleServer } from './support.js';

const TOKEN = 'console-admin-token';
const OPENAI = 'openai_chat_completions_basic'; // openai/gpt-4o-mini
const ANTHROPIC = 'anthropic_messages_prompt_cache_read'; // anthropic/claude-sonnet-4-5
const MISTRAL = 'mistral_chat_completions'; // mistral/mistral-small-latest

let srv: TestServer & { base: string };
let envoy: EnvoyEmulator;
let browser: Browser;
let page: Page;
let problems: string[];

beforeAll(async () => {
  browser = await launchBrowser();
  srv = await startConsoleServer('', (c) => {
    c.admin.token = TOKEN;
  });
  envoy = sidecar(srv);
  ({ page, problems } = await newPage(browser));
});

afterAll(async () => {
  await browser?.close();
  await envoy?.close();
  await srv?.stop();
});

const api = (method: string, path: string, body?: unknown) => apiCall(srv.base, TOKEN, method, path, body);

/** A fresh load of a console page (a hash change alone would keep an open dialog). */
async function open(route: string): Promise<void> {
  await page.goto('about:blank');
  await page.goto(`${srv.base}/console/#/${route}`);
  await page.locator('main h1').waitFor();
}

/** Replays and waits until the inventory holds it. */
async function traffic(name: string, consumer: string) {
  const r = await replay(envoy, name, consumer);
  await srv.server.flush();
  return r;
}

describe('console (admin)', () => {
  it('asks for the admin token, refuses a wrong one, and signs in with the right one', async () => {
    await page.goto(`${srv.base}/console/`);
    await page.getByLabel('Admin token').waitFor();
    await screenshot(page, 'login');
    await page.getByLabel('Admin token').fill('not-the-token');
    await page.getByRole('button', { name: 'Sign in' }).click();
    await expect.poll(() => page.getByRole('alert').textContent()).toContain('does not accept this token');
    await login(page, srv.base, TOKEN);
    await expect.poll(() => page.getByTestId('user-name').textContent()).toBeTruthy();
  });

  it('shows discovered traffic after it is replayed through Envoy', async () => {
    await open('inventory');
    await expect.poll(() => page.locator('main').textContent()).toContain('No traffic discovered yet');
    for (const [name, consumer] of [
      [OPENAI, 'checkout-service'],
      [ANTHROPIC, 'support-bot'],
      [MISTRAL, 'spiffe://prod/ns/payments/sa/ledger'],
    ] as const) {
      expect((await traffic(name, consumer)).downstream.status).toBe(200);
    }
    await page.getByRole('button', { name: 'Refresh' }).click();
    const rows = page.getByRole('table', { name: 'Inventory' }).locator('tbody tr');
    await expect.poll(() => rows.count()).toBe(3);
    const text = await page.getByRole('table', { name: 'Inventory' }).textContent();
    for (const want of ['checkout-service', 'gpt-4o-mini', 'support-bot', 'claude-sonnet-4-5', 'spiffe://prod/ns/payments/sa/ledger', 'mistral-small-latest']) expect(text).toContain(want);

    // Filtering by provider goes through the API.
    await page.getByLabel('Provider').selectOption('anthropic');
    await expect.poll(() => rows.count()).toBe(1);
    expect(await rows.first().textContent()).toContain('support-bot');

    // The dashboard counts the same requests.
    await open('dashboard');
    await expect.poll(() => page.locator('[data-kpi="requests"] .kpi-value').textContent()).toBe('3');
    await expect.poll(() => page.getByRole('img', { name: 'Spend per hour' }).count()).toBe(1);
  });

  it('resolves a consumer to an owner created in the console', async () => {
    await open('owners');
    await page.getByRole('button', { name: 'New owner' }).click();
    const dlg = page.getByRole('dialog');
    await dlg.getByLabel('Id', { exact: true }).fill('payments');
    await dlg.getByLabel('Name').fill('Payments');
    await dlg.getByLabel('Cost center').fill('CC-1042');
    await dlg.getByRole('button', { name: 'Create' }).click();
    await expect.poll(() => page.getByRole('table', { name: 'Owners' }).textContent()).toContain('CC-1042');

    await open('consumers');
    const row = page.getByRole('table', { name: 'Consumers' }).locator('tbody tr', { hasText: 'checkout-service' });
    await expect.poll(() => row.textContent()).toContain('discovered');
    await row.getByRole('button', { name: 'Resolve…' }).click();
    const resolve = page.getByRole('dialog');
    await resolve.getByLabel('Status').selectOption('added');
    await resolve.getByLabel('Owner').selectOption('payments');
    await resolve.getByLabel('Display name').fill('Checkout');
    await resolve.getByLabel('Labels (key=value per line)').fill('team=payments\nenv=prod');
    await resolve.getByRole('button', { name: 'Save' }).click();
    await expect.poll(() => row.textContent()).toContain('Payments');
    expect(await row.textContent()).toContain('added');
    expect(await row.textContent()).toContain('team=payments');

    const owned = await api('GET', '/api/v1/consumers?owner=payments');
    expect(owned.status).toBe(200);
    expect(owned.body.items.map((c: any) => c.consumer)).toEqual(['checkout-service']);
    expect(owned.body.items[0].resolution).toMatchObject({ status: 'added', owner: 'payments', labels: { team: 'payments', env: 'prod' }, displayName: 'Checkout' });
  });

  it('bulk-resolves consumers by pattern with a preview of the matches', async () => {
    await open('consumers');
    await page.getByRole('button', { name: 'Bulk resolve…' }).click();
    const dlg = page.getByRole('dialog');
    await dlg.getByLabel('Pattern').fill('spiffe://prod/ns/payments/*');
    await dlg.getByLabel('Rule id').fill('payments-prod');
    await dlg.getByLabel('Owner').selectOption('payments');
    await dlg.getByRole('button', { name: 'Preview matches' }).click();
    await expect.poll(() => dlg.getByTestId('preview-total').textContent()).toBe('1 known consumer match');
    expect(await dlg.locator('.match-list').textContent()).toContain('spiffe://prod/ns/payments/sa/ledger');
    await dlg.getByRole('button', { name: 'Create rule' }).click();
    await expect.poll(() => page.getByRole('table', { name: 'Consumer rules' }).textContent()).toContain('payments-prod');
    const row = page.getByRole('table', { name: 'Consumers' }).locator('tbody tr', { hasText: 'spiffe://prod/ns/payments/sa/ledger' });
    await expect.poll(() => row.textContent()).toContain('rule:payments-prod');
  });

  it('creates a budget in the console that then rejects requests over its limit with 429', async () => {
    await open('budgets');
    await page.getByRole('button', { name: 'New budget' }).click();
    const dlg = page.getByRole('dialog');
    await dlg.getByLabel('Id', { exact: true }).fill('checkout-daily');
    await dlg.getByLabel('Mode', { exact: true }).selectOption('enforce');
    await dlg.getByLabel('Consumers', { exact: true }).fill('budget-app');
    await dlg.getByLabel('Limit metric').selectOption('requests');
    await dlg.getByLabel('Limit amount').fill('1');
    await dlg.getByLabel('Limit window').selectOption('day');
    await dlg.getByRole('button', { name: 'Create' }).click();
    // Enforcing is confirmed in a second modal.
    const confirm = page.getByRole('dialog', { name: 'Enforce this budget?' });
    await confirm.getByRole('button', { name: 'Enforce' }).click();
    const table = page.getByRole('table', { name: 'Budgets' });
    await expect.poll(() => table.textContent()).toContain('checkout-daily');
    expect(await table.getByRole('switch', { name: 'Enforce checkout-daily' }).getAttribute('aria-checked')).toBe('true');

    await srv.server.refreshBudgets();
    const first = await traffic(OPENAI, 'budget-app');
    expect(first.downstream.status).toBe(200);
    const second = await traffic(OPENAI, 'budget-app');
    expect(second.downstream.status).toBe(429);
    expect(second.upstream.contacted).toBe(false);

    await open('budgets');
    const limit = page.locator('[data-limit="checkout-daily"]');
    await expect.poll(() => limit.textContent()).toContain('1 used, 0 left');
  });

  it('marks a model unsanctioned and, under an enforce policy, its requests are rejected with 403', async () => {
    await open('resources');
    const sanction = (id: string) => page.getByRole('switch', { name: `Sanctioned ${id}` });
    await sanction('openai/gpt-4o-mini').click();
    await expect.poll(() => sanction('openai/gpt-4o-mini').getAttribute('aria-checked')).toBe('true');
    // Sanctioned, then marked unsanctioned again: reviewed and refused.
    await sanction('anthropic/claude-sonnet-4-5').click();
    await expect.poll(() => sanction('anthropic/claude-sonnet-4-5').getAttribute('aria-checked')).toBe('true');
    await sanction('anthropic/claude-sonnet-4-5').click();
    await expect.poll(() => sanction('anthropic/claude-sonnet-4-5').getAttribute('aria-checked')).toBe('false');
    const resources = (await api('GET', '/api/v1/resources')).body.items;
    expect(resources.find((r: any) => r.id === 'anthropic/claude-sonnet-4-5')).toMatchObject({ sanctioned: false, reviewed: true });

    await open('policies');
    await page.getByRole('radio', { name: /Enforce/ }).check();
    await page.getByRole('button', { name: 'Save global policy' }).click();
    await page.getByRole('dialog', { name: 'Enforce the global policy?' }).getByRole('button', { name: 'Enforce' }).click();
    await expect.poll(async () => (await api('GET', '/api/v1/policies')).body.items.find((p: any) => p.id === 'global')?.mode).toBe('enforce');

    await eventually(async () => {
      const refused = await replay(envoy, ANTHROPIC, 'support-bot');
      expect(refused.downstream.status).toBe(403);
      expect(refused.upstream.contacted).toBe(false);
    }, 5000);
    expect((await replay(envoy, OPENAI, 'support-bot')).downstream.status).toBe(200);
  });

  it('downloads the FOCUS export', async () => {
    await open('exports');
    const downloads: Download[] = [];
    page.on('download', (d) => downloads.push(d));
    await page.getByRole('button', { name: 'Download FOCUS CSV' }).click();
    const status = page.locator('.export-status').first();
    await expect.poll(() => status.textContent()).toMatch(/Downloaded|Error|Not available/);
    // On failure this shows the console's message (the API's error).
    expect(await status.textContent()).toMatch(/^Downloaded .+\.csv$/);
    await expect.poll(() => downloads.length).toBe(1);
    const file = downloads[0]!;
    expect(file.suggestedFilename()).toMatch(/\.csv$/);
    const csv = readFileSync((await file.path())!, 'utf8');
    const [header, ...rows] = csv.trim().split(/\r?\n/);
    for (const column of ['ChargePeriodStart', 'ChargePeriodEnd', 'ServiceCategory', 'SkuId', 'ListCost', 'EffectiveCost', 'BillingCurrency', 'ResourceId', 'SubAccountId']) expect(header).toContain(column);
    expect(rows.some((r) => r.includes('checkout-service') && r.includes('openai:gpt-4o-mini') && r.includes('payments'))).toBe(true);
  });

  it('shows names from traffic and the API as text, never as markup', async () => {
    // Consumer ids come from request headers, names and labels from whoever holds a token.
    const hostile = '<img src=x onerror="window.__xss=1">';
    const consumer = `evil-${hostile}`;
    expect((await traffic(OPENAI, consumer)).downstream.status).toBe(200);
    expect((await api('POST', '/api/v1/owners', { id: 'markup', name: `<b>${hostile}</b>` })).status).toBe(201);
    expect((await api('PUT', `/api/v1/consumers/${encodeURIComponent(consumer)}`, { status: 'added', owner: 'markup', displayName: `<i>${hostile}</i>`, labels: { team: hostile } })).status).toBeLessThan(300);
    for (const route of ['inventory', 'consumers', 'owners', 'dashboard']) {
      await open(route);
      await expect.poll(() => page.locator('main').textContent(), { message: route }).toContain(hostile);
      expect(await page.locator('main img, main b, main i').count(), route).toBe(0);
    }
    expect(await page.evaluate('typeof window.__xss')).toBe('undefined');
  });

  it('asks before deleting, and keeps the row when the question is cancelled', async () => {
    expect((await api('POST', '/api/v1/owners', { id: 'short-lived', name: 'Short-lived' })).status).toBe(201);
    await open('owners');
    const row = page.getByRole('table', { name: 'Owners' }).locator('tbody tr', { hasText: 'short-lived' });
    await row.getByRole('button', { name: 'Delete' }).click();
    await page.getByRole('dialog', { name: 'Delete owner Short-lived?' }).getByRole('button', { name: 'Cancel' }).click();
    expect((await api('GET', '/api/v1/owners')).body.items.map((o: any) => o.id)).toContain('short-lived');
    await row.getByRole('button', { name: 'Delete' }).click();
    await page.getByRole('dialog', { name: 'Delete owner Short-lived?' }).getByRole('button', { name: 'Delete' }).click();
    await expect.poll(() => row.count()).toBe(0);
    expect((await api('GET', '/api/v1/owners')).body.items.map((o: any) => o.id)).not.toContain('short-lived');
  });

  it('renders every page without errors at 1280×800 (screenshots in artifacts/console/)', async () => {
    const pages: [string, string][] = [
      ['dashboard', 'Dashboard'],
      ['inventory', 'Inventory'],
      ['consumers', 'Consumers'],
      ['owners', 'Owners'],
      ['resources', 'Resources'],
      ['policies', 'Policies'],
      ['budgets', 'Budgets'],
      ['templates', 'Budget templates'],
      ['would-block', 'Would-block report'],
      ['exports', 'Exports'],
      ['audit', 'Audit log'],
    ];
    const messages: Record<string, string[]> = {};
    for (const [route, title] of pages) {
      await open(route);
      expect(await page.locator('main h1').textContent()).toBe(title);
      await expect.poll(() => page.locator('[aria-busy="true"]').count(), { message: `${route} finished loading` }).toBe(0);
      await screenshot(page, route);
      // Neither API errors nor "not available on this server" notices: every feature is served.
      const shown = await page.locator('main .alert, main .notice').allTextContents();
      if (shown.length > 0) messages[route] = shown;
    }
    expect(messages).toEqual({});
    // The audit log names the admin token that made the changes above.
    await open('audit');
    await expect.poll(() => page.getByRole('table', { name: 'Audit log' }).textContent()).toContain('checkout-daily');
    expect(problems).toEqual([]);
  });

  it('logs out: the token is forgotten and the login page is back', async () => {
    await open('dashboard');
    // The token is kept for the tab only.
    expect(await page.evaluate('localStorage.length')).toBe(0);
    await page.getByRole('button', { name: 'Log out' }).click();
    await expect.poll(() => page.url()).toContain('#/login');
    expect(await page.evaluate('sessionStorage.length')).toBe(0);
    await page.goto(`${srv.base}/console/#/owners`);
    await expect.poll(() => page.getByLabel('Admin token').count()).toBe(1);
  });
});
