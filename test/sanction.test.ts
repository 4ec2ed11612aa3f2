/**
 * The catalog on the request path, through the real gRPC server and the Envoy emulator (sidecar
 * mode, and observability mode for flag-only): the unsanctioned-model policy (enforce answers 403
 * in the provider's format without contacting the upstream, monitor flags with a header, metadata,
 * the record and a metric), and catalog labels and attached templates in budget admission.
 *
 * The ext_proc server is composed here the way src/server.ts composes it, with a catalog the test
 * replaces per case (config-like definitions), so each case states exactly the catalog it needs.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Catalog, EMPTY_DEFINITIONS, type CatalogDefinitions } from '../src/catalog/catalog.js';
import type { Owner, ConsumerEntry, ConsumerRule, Resource, SanctionPolicy } from '../src/catalog/types.js';
import { parseConfig } from '../src/config/load.js';
import { defaultConfig } from '../src/config/types.js';
import { Metrics } from '../src/telemetry/metrics.js';
import type { ExchangeRecord } from '../src/domain.js';
import { BudgetGovernor } from '../src/governance/governor.js';
import { ExtProcServer } from '../src/extproc/server.js';
import { Admitter } from '../src/governance/admission.js';
import { PolicySet } from '../src/governance/policy-set.js';
import { PriceBook } from '../src/metering/prices.js';
import { TokenCounter } from '../src/metering/tokens.js';
import { createLedger } from '../src/stores.js';
import { createConsumerResolver } from '../src/traffic/consumer.js';
import { Exchange } from '../src/traffic/exchange.js';
import { createRecognizer } from '../src/traffic/recognize.js';
import { EnvoyEmulator, type ExchangeInput, type ExchangeResult } from './emulator/envoy.js';
import { OBSERVABILITY, SIDECAR } from './support/envoy-modes.js';
import { loadFixtures, type Fixture } from './support/fixtures.js';
import { eventually } from './support/wait.js';
import { testObserver } from './support/observer.js';

const fixtures = loadFixtures();
const fixture = (name: string): Fixture => fixtures.find((f) => f.name === name)!;

const BUDGETS = `
budgets:
  - id: one-a-day
    mode: enforce
    select: { consumers: [reserve-check] }
    limits: [{ requests: 1, per: day }]
  - id: payments-team
    mode: enforce
    select: { labels: { owner: payments, env: prod } }
    limits: [{ requests: 1, per: day }]
budget_templates:
  - id: per-app
    mode: enforce
    group_by: consumer
    select: { consumers: ["nobody-*"], providers: [openai] }
    limits: [{ requests: 1, per: day }]
`;

type Definitions = Partial<{
  owners: Omit<Owner, 'source'>[];
  consumers: Omit<ConsumerEntry, 'source'>[];
  consumerRules: Omit<ConsumerRule, 'source'>[];
  resources: Omit<Resource, 'source' | 'id'>[];
  policies: Omit<SanctionPolicy, 'source'>[];
}>;

/** A catalog as the config file would declare it. */
function catalogOf(d: Definitions): Catalog {
  const defs: CatalogDefinitions = {
    owners: (d.owners ?? []).map((o) => ({ ...o, source: 'config' })),
    consumers: (d.consumers ?? []).map((c) => ({ ...c, source: 'config' })),
    consumerRules: (d.consumerRules ?? []).map((r) => ({ ...r, source: 'config' })),
    resources: (d.resources ?? []).map((r) => ({ ...r, id: `${r.provider}/${r.model}`, source: 'config' })),
    policies: (d.policies ?? []).map((p) => ({ ...p, source: 'config' })),
  };
  return new Catalog(defs);
}

interface Harness {
  address: string;
  metrics: Metrics;
  records: ExchangeRecord[];
  setCatalog(c: Catalog): void;
  stop(): Promise<void>;
}

async function startHarness(): Promise<Harness> {
  const config = defaultConfig();
  const parsed = parseConfig(BUDGETS, 'sanction.test.yaml', {});
  const policies = new PolicySet(parsed.budgets, parsed.budget_templates);
  const metrics = new Metrics({ defaultMetrics: false });
  const records: ExchangeRecord[] = [];
  const tokens = new TokenCounter({ maxExactBytes: config.metering.max_exact_tokenize_bytes });
  const prices = new PriceBook(config.metering.price_overrides);
  const ledger = createLedger(config.store);
  let catalog = new Catalog(EMPTY_DEFINITIONS);
  const admitter = new Admitter({
    policies: () => policies,
    ledger,
    price: (provider, model, usage) => prices.cost(provider, [model], usage)?.microUsd ?? null,
    defaultMaxOutputTokens: 100,
    leaseMs: 60_000,
    ledgerTimeoutMs: 1_000,
  });
  const governor = new BudgetGovernor({
    admitter,
    catalog: () => catalog,
    unsanctioned: (e) => metrics.recordUnsanctioned(e),
  });
  const deps = {
    recognize: createRecognizer(config.discovery),
    resolveConsumer: createConsumerResolver({ ...config.consumer, fingerprint_secret: 'test-secret' }),
    tokens,
    prices,
    metering: config.metering,
    limits: config.limits,
  };
  const server = new ExtProcServer({
    address: '127.0.0.1:0',
    maxReceiveMessageBytes: config.grpc.max_receive_message_bytes,
    stream: {
      newExchange: (observability) => new Exchange(deps, { observability }),
      metadata: config.metadata,
      skipNonLlm: true,
      governor,
      observer: testObserver({ record: (r) => void records.push(r) }),
    },
  });
  const address = await server.start();
  return {
    address,
    metrics,
    records,
    setCatalog: (c) => (catalog = c),
    async stop() {
      await server.shutdown(1000);
      await ledger.close();
      await tokens.close();
    },
  };
}

let sequence = 0;

/** The fixture's exchange, as sent by `consumer`. */
function fromFixture(fx: Fixture, consumer: string): ExchangeInput {
  const headers: [string, string][] = [
    ...fx.request.headers.filter(([k]) => k !== 'x-consumer-id' && k !== 'x-request-id'),
    ['x-consumer-id', consumer],
    ['x-request-id', `sanction-test-${process.pid}-${++sequence}`],
  ];
  return {
    request: { headers, body_chunks: fx.request.body_chunks },
    upstream: { headers: fx.response.headers, body_chunks: fx.response.body_chunks },
  };
}

const OPENAI = fixture('openai_chat_completions_basic');
const ANTHROPIC = fixture('anthropic_messages_prompt_cache_read');

function expectForbidden(r: ExchangeResult): any {
  expect(r.errors).toEqual([]);
  expect(r.downstream.status).toBe(403);
  expect(r.upstream.contacted).toBe(false);
  expect(r.downstream.headers?.get('content-type')).toBe('application/json');
  return JSON.parse(r.downstream.body.toString('utf8'));
}

function expectAdmitted(r: ExchangeResult): void {
  expect(r.errors).toEqual([]);
  expect(r.downstream.status).toBe(200);
  expect(r.upstream.contacted).toBe(true);
}

describe('the catalog on the request path', () => {
  let h: Harness;
  let sidecar: EnvoyEmulator;

  beforeAll(async () => {
    h = await startHarness();
    sidecar = new EnvoyEmulator(h.address, SIDECAR);
  });
  afterAll(async () => {
    await sidecar.close();
    await h.stop();
  });

  async function recordOf(consumer: string, count = 1): Promise<ExchangeRecord[]> {
    let found: ExchangeRecord[] = [];
    await eventually(async () => {
      found = h.records.filter((r) => r.consumer?.id === consumer);
      expect(found).toHaveLength(count);
    });
    return found;
  }

  async function unsanctionedCount(labels: Record<string, string>): Promise<number> {
    const metric = await h.metrics.unsanctionedRequests.get();
    const has = (v: { labels: Record<string, string | number | undefined> }): boolean => Object.entries(labels).every(([k, want]) => v.labels[k] === want);
    return metric.values.filter(has).reduce((n, v) => n + v.value, 0);
  }

  describe('unsanctioned-model policy', () => {
    it('enforce: refuses in the OpenAI error format with 403, never contacts the upstream, records policy:global', async () => {
      h.setCatalog(catalogOf({ policies: [{ id: 'global', mode: 'enforce', allow: [] }] }));
      const blocked = { gen_ai_provider_name: 'openai', gen_ai_request_model: 'gpt-4o-mini', policy: 'global', decision: 'blocked' };
      const before = await unsanctionedCount(blocked);
      const r = await sidecar.exchange(fromFixture(OPENAI, 'enforce-openai'));
      const body = expectForbidden(r);
      // What the OpenAI SDKs read: error.code, error.type, error.message.
      expect(body.error.code).toBe('model_not_sanctioned');
      expect(body.error.type).toBe('request_forbidden');
      expect(body.error.message).toContain('"gpt-4o-mini"');
      expect(body.error.message).toContain('not sanctioned');
      expect(r.downstream.headers?.get('x-tokenwarden-unsanctioned')).toBe('openai/gpt-4o-mini');
      expect(r.downstream.headers?.get('x-tokenwarden-policy')).toBe('global');
      expect(r.dynamicMetadata.tokenwarden?.unsanctioned).toBe(true);

      const [rec] = await recordOf('enforce-openai');
      expect(rec).toMatchObject({ status: 403, blockedBy: ['policy:global'], unsanctioned: true, usageSource: 'none' });
      expect(await unsanctionedCount(blocked)).toBe(before + 1);
    });

    it('enforce: refuses in the Anthropic error format', async () => {
      h.setCatalog(catalogOf({ policies: [{ id: 'global', mode: 'enforce', allow: [] }] }));
      const r = await sidecar.exchange(fromFixture(ANTHROPIC, 'enforce-anthropic'));
      const body = expectForbidden(r);
      // What the Anthropic SDKs read: type "error" and error.type (PermissionDeniedError on 403).
      expect(body.type).toBe('error');
      expect(body.error.type).toBe('permission_error');
      expect(body.error.message).toContain('"claude-sonnet-4-5"');
      expect(body.error.message).toContain('not sanctioned');
      const [rec] = await recordOf('enforce-anthropic');
      expect(rec).toMatchObject({ provider: 'anthropic', status: 403, blockedBy: ['policy:global'], unsanctioned: true });
    });

    it('enforce: refuses before budgets, so a refused request reserves nothing', async () => {
      // one-a-day admits one request a day for reserve-check; the sanctioned model gets it.
      h.setCatalog(
        catalogOf({
          policies: [{ id: 'global', mode: 'enforce', allow: [] }],
          resources: [{ provider: 'anthropic', model: 'claude-sonnet-4-5', sanctioned: true }],
        }),
      );
      expectForbidden(await sidecar.exchange(fromFixture(OPENAI, 'reserve-check')));
      expectForbidden(await sidecar.exchange(fromFixture(OPENAI, 'reserve-check')));
      expectAdmitted(await sidecar.exchange(fromFixture(ANTHROPIC, 'reserve-check')));
      const third = await sidecar.exchange(fromFixture(ANTHROPIC, 'reserve-check'));
      expect(third.downstream.status).toBe(429);
      expect(third.downstream.headers?.get('x-tokenwarden-budget')).toBe('one-a-day');
    });

    it('monitor: admits, flags with the header, the dynamic metadata, the record and the metric', async () => {
      h.setCatalog(catalogOf({ policies: [{ id: 'global', mode: 'monitor', allow: [] }] }));
      const flagged = { gen_ai_provider_name: 'openai', gen_ai_request_model: 'gpt-4o-mini', policy: 'global', decision: 'flagged' };
      const before = await unsanctionedCount(flagged);
      const r = await sidecar.exchange(fromFixture(OPENAI, 'monitor-app'));
      expectAdmitted(r);
      expect(r.downstream.headers?.get('x-tokenwarden-unsanctioned')).toBe('openai/gpt-4o-mini');
      expect(r.dynamicMetadata.tokenwarden?.unsanctioned).toBe(true);
      const [rec] = await recordOf('monitor-app');
      expect(rec).toMatchObject({ status: 200, blockedBy: [], unsanctioned: true, usageSource: 'reported' });
      expect(await unsanctionedCount(flagged)).toBe(before + 1);
    });

    it('a sanctioned resource passes an enforce policy unflagged', async () => {
      h.setCatalog(
        catalogOf({
          policies: [{ id: 'global', mode: 'enforce', allow: [] }],
          resources: [{ provider: 'openai', model: 'gpt-4o-mini', sanctioned: true }],
        }),
      );
      const r = await sidecar.exchange(fromFixture(OPENAI, 'sanctioned-app'));
      expectAdmitted(r);
      expect(r.downstream.headers?.get('x-tokenwarden-unsanctioned')).toBeUndefined();
      expect(r.dynamicMetadata.tokenwarden?.unsanctioned).toBeUndefined();
      const [rec] = await recordOf('sanctioned-app');
      expect(rec).toMatchObject({ unsanctioned: false, blockedBy: [] });
    });

    it("an owner's policy overrides the global one", async () => {
      h.setCatalog(
        catalogOf({
          owners: [{ id: 'research', name: 'Research' }],
          consumers: [{ id: 'lab-notebook', status: 'added', owner: 'research' }],
          policies: [
            { id: 'global', mode: 'enforce', allow: [] },
            { id: 'research', mode: 'monitor', allow: [] },
          ],
        }),
      );
      const r = await sidecar.exchange(fromFixture(OPENAI, 'lab-notebook'));
      expectAdmitted(r);
      expect(r.downstream.headers?.get('x-tokenwarden-unsanctioned')).toBe('openai/gpt-4o-mini');
      expect(await unsanctionedCount({ policy: 'research', decision: 'flagged' })).toBe(1);
      // Another consumer still follows the global policy.
      expectForbidden(await sidecar.exchange(fromFixture(OPENAI, 'not-research')));
    });

    it("an owner's allowlist permits a model that is not sanctioned", async () => {
      h.setCatalog(
        catalogOf({
          owners: [{ id: 'search', name: 'Search' }],
          consumerRules: [{ id: 'search-apps', match: 'search-*', priority: 10, status: 'added', owner: 'search' }],
          policies: [
            { id: 'global', mode: 'enforce', allow: [] },
            { id: 'search', mode: 'enforce', allow: ['openai/gpt-4o-*'] },
          ],
        }),
      );
      const r = await sidecar.exchange(fromFixture(OPENAI, 'search-ranker'));
      expectAdmitted(r);
      expect(r.downstream.headers?.get('x-tokenwarden-unsanctioned')).toBeUndefined();
      const [rec] = await recordOf('search-ranker');
      expect(rec?.unsanctioned).toBe(false);
      // The allowlist is the owner's: Anthropic is still refused for them.
      expectForbidden(await sidecar.exchange(fromFixture(ANTHROPIC, 'search-ranker')));
    });

    it('mode off: nothing is flagged or blocked', async () => {
      h.setCatalog(catalogOf({ policies: [{ id: 'global', mode: 'off', allow: [] }] }));
      const counted = await unsanctionedCount({});
      const r = await sidecar.exchange(fromFixture(OPENAI, 'policy-off'));
      expectAdmitted(r);
      expect(r.downstream.headers?.get('x-tokenwarden-unsanctioned')).toBeUndefined();
      const [rec] = await recordOf('policy-off');
      expect(rec?.unsanctioned).toBe(false);
      expect(r.dynamicMetadata.tokenwarden?.unsanctioned).toBeUndefined();
      expect(await unsanctionedCount({})).toBe(counted);
    });

    it('observability mode: an enforce policy only flags (mirrored traffic cannot be refused)', async () => {
      h.setCatalog(catalogOf({ policies: [{ id: 'global', mode: 'enforce', allow: [] }] }));
      const flagged = { gen_ai_request_model: 'gpt-4o-mini', policy: 'global', decision: 'flagged' };
      const before = await unsanctionedCount(flagged);
      const mirror = new EnvoyEmulator(h.address, OBSERVABILITY);
      try {
        const r = await mirror.exchange(fromFixture(OPENAI, 'mirrored-app'));
        expect(r.errors).toEqual([]);
        expect(r.downstream.status).toBe(200);
        expect(r.upstream.contacted).toBe(true);
      } finally {
        await mirror.close();
      }
      const [rec] = await recordOf('mirrored-app');
      expect(rec).toMatchObject({ mode: 'observability', unsanctioned: true, blockedBy: [], status: 200 });
      expect(await unsanctionedCount(flagged)).toBe(before + 1);
    });
    it('streamed request body (FULL_DUPLEX_STREAMED): the request already went upstream, so enforce only flags', async () => {
      h.setCatalog(catalogOf({ policies: [{ id: 'global', mode: 'enforce', allow: [] }] }));
      const duplex = new EnvoyEmulator(h.address, {
        ...SIDECAR,
        processing_mode: { ...SIDECAR.processing_mode, request_body_mode: 'FULL_DUPLEX_STREAMED', request_trailer_mode: 'SEND' },
      });
      try {
        expectAdmitted(await duplex.exchange(fromFixture(OPENAI, 'duplex-app')));
      } finally {
        await duplex.close();
      }
      const [rec] = await recordOf('duplex-app');
      expect(rec).toMatchObject({ unsanctioned: true, blockedBy: [], status: 200 });
    });
  });

  describe('catalog labels and attached templates in budgets', () => {
    it('a budget selecting labels applies to consumers a rule resolves to that owner and env', async () => {
      h.setCatalog(
        catalogOf({
          owners: [{ id: 'payments', name: 'Payments' }],
          consumerRules: [
            { id: 'payments-prod', match: 'spiffe://prod/ns/payments/*', priority: 1, status: 'added', owner: 'payments', labels: { env: 'prod' } },
          ],
        }),
      );
      const consumer = 'spiffe://prod/ns/payments/sa/checkout';
      const first = await sidecar.exchange(fromFixture(OPENAI, consumer));
      expectAdmitted(first);
      expect(first.downstream.headers?.get('x-tokenwarden-budget')).toBe('payments-team');
      const second = await sidecar.exchange(fromFixture(OPENAI, consumer));
      expect(second.downstream.status).toBe(429);
      expect(second.upstream.contacted).toBe(false);
      expect(second.downstream.headers?.get('x-tokenwarden-budget')).toBe('payments-team');
      // A consumer outside the rule has no such labels: the budget does not apply.
      const other = await sidecar.exchange(fromFixture(OPENAI, 'spiffe://staging/ns/payments/sa/checkout'));
      expectAdmitted(other);
      expect(other.downstream.headers?.get('x-tokenwarden-budget')).toBeUndefined();
    });

    it("a template attached to a consumer's entry applies to it whatever the template's consumer selector says", async () => {
      h.setCatalog(catalogOf({ consumers: [{ id: 'billing-worker', status: 'added', budgetTemplates: ['per-app'] }] }));
      const first = await sidecar.exchange(fromFixture(OPENAI, 'billing-worker'));
      expectAdmitted(first);
      expect(first.downstream.headers?.get('x-tokenwarden-budget')).toBe('per-app:billing-worker');
      const second = await sidecar.exchange(fromFixture(OPENAI, 'billing-worker'));
      expect(second.downstream.status).toBe(429);
      expect(second.downstream.headers?.get('x-tokenwarden-budget')).toBe('per-app:billing-worker');
      // The template's providers still narrow: Anthropic traffic of the same consumer is not counted.
      const anthropic = await sidecar.exchange(fromFixture(ANTHROPIC, 'billing-worker'));
      expectAdmitted(anthropic);
      expect(anthropic.downstream.headers?.get('x-tokenwarden-budget')).toBeUndefined();
    });
  });
});
