/**
 * CPU per response-body chunk inside the Exchange (decoding and metering only, no gRPC): the bench's
 * stream scenarios fed to fresh Exchanges in a loop, best of several rounds.
 * `npx tsx bench/stream-chunks.ts [iterations] [rounds]`; with `node --cpu-prof --import tsx` for a profile.
 */
import { performance } from 'node:perf_hooks';
import { Exchange, type ExchangeDeps } from '../src/traffic/exchange.js';
import { recognize } from '../src/traffic/recognize.js';
import { createConsumerResolver } from '../src/traffic/consumer.js';
import { PriceBook } from '../src/metering/prices.js';
import { defaultConfig } from '../src/config/types.js';
import { findScenario, type HeaderList } from './driver/scenarios.js';

const config = defaultConfig();
const deps: ExchangeDeps = {
  recognize: (h) => recognize(h, config.discovery),
  resolveConsumer: createConsumerResolver(config.consumer),
  // Every scenario reports usage: nothing is tokenised.
  tokens: { count: async () => ({ tokens: 0, method: 'bound' }) },
  prices: new PriceBook([]),
  metering: config.metering,
  limits: config.limits,
};

const headerMap = (list: HeaderList): Map<string, string> => new Map(list.map(([k, v]) => [k, v]));

interface Figures {
  perChunkUs: number;
  cpuPerExchangeUs: number;
}

async function run(name: string, iterations: number): Promise<Figures> {
  const s = findScenario(name);
  const reqHeaders = headerMap(s.requestHeaders);
  const resHeaders = headerMap(s.responseHeaders);
  const chunks = s.responseChunks;
  const noAttributes = new Map<string, string>();
  let chunkMs = 0;
  let reported = 0;
  const cpu0 = process.cpuUsage();
  for (let i = 0; i < iterations; i++) {
    const ex = new Exchange(deps, { observability: false });
    ex.onRequestHeaders(reqHeaders, false, noAttributes);
    if (s.requestBody) ex.onRequestBody(s.requestBody, true);
    ex.onResponseHeaders(resHeaders, false);
    const c0 = performance.now();
    for (let k = 0; k < chunks.length; k++) {
      // As the ext_proc stream does without a budget's output cap (which also reads streamedOutputTokens()).
      ex.onResponseBody(chunks[k]!, k === chunks.length - 1);
    }
    chunkMs += performance.now() - c0;
    const record = await ex.finish();
    if (record.usageSource === 'reported') reported++;
  }
  const cpu = process.cpuUsage(cpu0);
  if (reported !== iterations) throw new Error(`${name}: usage not reported`);
  return { perChunkUs: (chunkMs * 1000) / (iterations * chunks.length), cpuPerExchangeUs: (cpu.user + cpu.system) / iterations };
}

const iterations = Number(process.argv[2] ?? 20_000);
const rounds = Number(process.argv[3] ?? 5);
const names = ['chat-stream', 'anthropic-stream', 'bedrock-stream'];
for (const name of names) await run(name, Math.ceil(iterations / 10)); // JIT warm-up
// Rounds interleave the scenarios; the best round of each is printed, the machine being shared.
const best = new Map<string, Figures>();
for (let r = 0; r < rounds; r++) {
  for (const name of names) {
    const f = await run(name, iterations);
    const b = best.get(name);
    if (!b || f.perChunkUs < b.perChunkUs) best.set(name, f);
  }
}
for (const name of names) {
  const f = best.get(name)!;
  const chunks = findScenario(name).responseChunks.length;
  console.log(`${name.padEnd(17)} ${String(chunks).padStart(3)} chunks: ${f.perChunkUs.toFixed(2)} µs per chunk, ${f.cpuPerExchangeUs.toFixed(1)} µs CPU per exchange`);
}
