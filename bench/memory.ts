/**
 * Memory of a tokenwarden process under streaming load (issue 5, "Memory"):
 *   (a) 1,000 concurrent streaming chat exchanges held open mid-stream: RSS and heap with them open,
 *       per open stream, and after they end;
 *   (b) one exchange streaming a 100 MB SSE response in chunks: RSS sampled throughout, to show it
 *       stays bounded (per-stream memory must not grow with the stream's length).
 *
 *   node --import tsx bench/memory.ts [--streams 1000] [--megabytes 100]
 *
 * It starts its own `tokenwarden serve` (memory store) and reads the figures from the server's own
 * admin /metrics (tokenwarden_process_*): no inspector, and the driver's memory is not counted. The
 * client is a bare gRPC-over-node:http2 one that writes each body chunk as it goes, so the driver
 * never holds a whole response.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { connect, type ClientHttp2Session, type ClientHttp2Stream } from 'node:http2';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { startServeProcess, type ServeProcess } from './serve-process.js';
import { encodeRequest, PROCESS_PATH, type WireProcessingRequest } from '../src/extproc/protocol.js';

/** Streams per HTTP/2 connection, roughly what an Envoy worker thread multiplexes. */
const STREAMS_PER_CONNECTION = 100;
const CHUNK_BYTES = 64 * 1024;
/** Response chunks sent ahead of their answers, like Envoy's streamed-body pipelining. */
const WINDOW = 16;
const MB = 1024 * 1024;
/** Lets the background tokenizer load finish before the baseline is taken. */
const WARM_UP_SETTLE_MS = 1_000;

// --- the server under test -------------------------------------------------------------------


interface Sample {
  rss: number;
  heapUsed: number;
  streams: number;
}

async function sample(admin: string): Promise<Sample> {
  const text = await (await fetch(`http://${admin}/metrics`)).text();
  const read = (name: string): number => Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(text)?.[1] ?? NaN);
  return {
    rss: read('tokenwarden_process_resident_memory_bytes'),
    heapUsed: read('tokenwarden_nodejs_heap_size_used_bytes'),
    streams: read('tokenwarden_extproc_streams_active'),
  };
}

// --- a bare ext_proc client ------------------------------------------------------------------

/** One Process stream: writes length-prefixed messages, counts answers (their content is not needed). */
class RawExchange {
  private answered = 0;
  private pending: Buffer = Buffer.alloc(0);
  private waiters: Array<{ n: number; resolve: () => void }> = [];
  readonly closed: Promise<void>;

  constructor(private readonly stream: ClientHttp2Stream) {
    stream.on('data', (chunk: Buffer) => this.onData(chunk));
    this.closed = new Promise((resolve, reject) => {
      stream.once('close', () => resolve());
      stream.once('error', reject);
    });
  }

  send(msg: WireProcessingRequest): void {
    const body = encodeRequest(msg);
    const frame = Buffer.alloc(5 + body.length);
    frame.writeUInt32BE(body.length, 1);
    body.copy(frame, 5);
    this.stream.write(frame);
  }

  /** Resolves once `n` answers in total have arrived. */
  answers(n: number): Promise<void> {
    if (this.answered >= n) return Promise.resolve();
    return new Promise((resolve) => this.waiters.push({ n, resolve }));
  }

  end(): void {
    this.stream.end();
  }

  private onData(chunk: Buffer): void {
    this.pending = this.pending.length === 0 ? chunk : Buffer.concat([this.pending, chunk]);
    while (this.pending.length >= 5) {
      const size = 5 + this.pending.readUInt32BE(1);
      if (this.pending.length < size) break;
      this.pending = this.pending.subarray(size);
      this.answered++;
    }
    this.waiters = this.waiters.filter((w) => (this.answered >= w.n ? (w.resolve(), false) : true));
  }
}

function openExchange(session: ClientHttp2Session): RawExchange {
  return new RawExchange(session.request({ ':method': 'POST', ':path': PROCESS_PATH, 'content-type': 'application/grpc', te: 'trailers' }));
}

// --- the traffic: an OpenAI streaming chat, as Envoy's sidecar mode sends it --------------------

const header = (list: Array<[string, string]>): WireProcessingRequest['request_headers'] => ({
  headers: { headers: list.map(([key, v]) => ({ key, raw_value: Buffer.from(v) })) },
});

const PROMPT = JSON.stringify({
  model: 'gpt-4o-mini',
  stream: true,
  stream_options: { include_usage: true },
  messages: [{ role: 'user', content: 'Summarise the following. '.padEnd(2048, 'lorem ipsum ') }],
});

/** The request phases and the response headers: four answers. */
function startChat(x: RawExchange, consumer: string): void {
  x.send({
    request_headers: header([
      [':method', 'POST'],
      [':path', '/v1/chat/completions'],
      [':authority', 'api.openai.com'],
      [':scheme', 'https'],
      ['content-type', 'application/json'],
      ['x-consumer-id', consumer],
    ]),
  });
  x.send({ request_body: { body: Buffer.from(PROMPT), end_of_stream: true } });
  x.send({ response_headers: header([[':status', '200'], ['content-type', 'text/event-stream']]) });
}

const event = (content: string): string =>
  `data: {"id":"c1","object":"chat.completion.chunk","model":"gpt-4o-mini","choices":[{"index":0,"delta":{"content":"${content}"}}]}\n\n`;
const LAST =
  'data: {"id":"c1","object":"chat.completion.chunk","model":"gpt-4o-mini","choices":[],"usage":{"prompt_tokens":500,"completion_tokens":20000,"total_tokens":20500}}\n\ndata: [DONE]\n\n';

/** A response chunk of about `bytes` made of whole SSE events. */
function sseChunk(bytes: number): Buffer {
  const one = event('hello world ');
  return Buffer.from(one.repeat(Math.max(1, Math.floor(bytes / one.length))));
}

// --- the two measurements --------------------------------------------------------------------

interface Row {
  measure: string;
  rss: number;
  heapUsed: number;
  note: string;
}

async function concurrentStreams(tw: ServeProcess, count: number): Promise<Row[]> {
  const sessions = Array.from({ length: Math.ceil(count / STREAMS_PER_CONNECTION) }, () => connect(`http://${tw.grpc}`));
  const chunk = sseChunk(1024);
  const open = (n: number): Promise<RawExchange[]> => {
    const exchanges = Array.from({ length: n }, (_, i) => openExchange(sessions[i % sessions.length]!));
    exchanges.forEach((x, i) => {
      startChat(x, `bench-${i % 50}`);
      x.send({ response_body: { body: chunk, end_of_stream: false } });
    });
    return Promise.all(exchanges.map((x) => x.answers(4))).then(() => exchanges);
  };
  const finish = async (exchanges: RawExchange[]): Promise<void> => {
    for (const x of exchanges) {
      x.send({ response_body: { body: Buffer.from(LAST), end_of_stream: true } });
      x.end();
    }
    await Promise.all(exchanges.map((x) => x.closed));
  };
  try {
    // Warm-up, so the baseline already holds what is loaded once (the tokenizer, the price catalog,
    // JIT code) and the difference is what the open streams cost.
    await finish(await open(Math.min(count, STREAMS_PER_CONNECTION)));
    await new Promise((resolve) => setTimeout(resolve, WARM_UP_SETTLE_MS));
    const idle = await sample(tw.admin);
    const exchanges = await open(count);
    const busy = await sample(tw.admin);
    if (busy.streams !== count) throw new Error(`expected ${count} open streams, the server reports ${busy.streams}`);
    await finish(exchanges);
    const done = await sample(tw.admin);
    const per = (field: 'rss' | 'heapUsed'): string => kib((busy[field] - idle[field]) / count);
    return [
      { measure: 'idle (after a warm-up)', ...pick(idle), note: '' },
      { measure: `${count} streams open mid-response`, ...pick(busy), note: `per stream: ${per('rss')} RSS, ${per('heapUsed')} heap` },
      { measure: `after the ${count} ended`, ...pick(done), note: '' },
    ];
  } finally {
    for (const s of sessions) s.close();
  }
}

async function longStream(tw: ServeProcess, megabytes: number): Promise<Row[]> {
  const session = connect(`http://${tw.grpc}`);
  try {
    const x = openExchange(session);
    startChat(x, 'bench-long');
    await x.answers(3);
    const start = await sample(tw.admin);
    let peak = start;
    const chunk = sseChunk(CHUNK_BYTES);
    const chunks = Math.ceil((megabytes * MB) / chunk.length);
    const sampleEvery = Math.max(1, Math.floor((5 * MB) / chunk.length));
    for (let i = 0; i < chunks; i++) {
      // Keep at most WINDOW chunks unanswered: the server's answers pace the sender, as in Envoy.
      await x.answers(3 + i - WINDOW + 1);
      x.send({ response_body: { body: chunk, end_of_stream: false } });
      if (i % sampleEvery === 0) {
        const s = await sample(tw.admin);
        if (s.rss > peak.rss) peak = s;
      }
    }
    x.send({ response_body: { body: Buffer.from(LAST), end_of_stream: true } });
    await x.answers(3 + chunks + 1);
    const during = await sample(tw.admin);
    if (during.rss > peak.rss) peak = during;
    x.end();
    await x.closed;
    const end = await sample(tw.admin);
    const sent = (chunks * chunk.length) / MB;
    return [
      { measure: `one stream: start`, ...pick(start), note: '' },
      { measure: `one stream: peak while streaming`, ...pick(peak), note: `${sent.toFixed(0)} MB in ${chunks} chunks` },
      { measure: `one stream: end`, ...pick(end), note: `peak - start = ${mib(peak.rss - start.rss)} RSS` },
    ];
  } finally {
    session.close();
  }
}

const pick = (s: Sample): { rss: number; heapUsed: number } => ({ rss: s.rss, heapUsed: s.heapUsed });
const mib = (n: number): string => `${(n / MB).toFixed(1)} MiB`;
const kib = (n: number): string => `${(n / 1024).toFixed(1)} KiB`;

function printTable(rows: Row[]): void {
  const cells = [['measure', 'RSS', 'heap used', ''], ...rows.map((r) => [r.measure, mib(r.rss), mib(r.heapUsed), r.note])];
  const widths = cells[0]!.map((_, c) => Math.max(...cells.map((row) => row[c]!.length)));
  for (const row of cells) process.stdout.write(`${row.map((cell, c) => cell.padEnd(widths[c]!)).join('  ').trimEnd()}\n`);
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { streams: { type: 'string', default: '1000' }, megabytes: { type: 'string', default: '100' } } });
  const streams = Number(values.streams);
  const megabytes = Number(values.megabytes);
  if (!(Number.isInteger(streams) && streams > 0 && Number.isFinite(megabytes) && megabytes > 0)) throw new Error('--streams and --megabytes must be positive numbers');
  const dir = mkdtempSync(path.join(tmpdir(), 'tw-bench-memory-'));
  const tw = await startServeProcess(dir, 'bench');
  try {
    const rows = [...(await concurrentStreams(tw, streams)), ...(await longStream(tw, megabytes))];
    process.stdout.write(`tokenwarden memory (server process, from its /metrics)\n`);
    printTable(rows);
  } finally {
    await tw.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
