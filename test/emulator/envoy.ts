/**
 * Emulator of Envoy's ext_proc HTTP filter as a gRPC client (spec envoy-ext-proc.md §11): one filter
 * in front of a fake upstream, talking real gRPC to the processor under test over loopback TCP or a
 * Unix socket (`unix:/path`).
 *
 *   const envoy = new EnvoyEmulator(target, { processing_mode: { request_body_mode: 'BUFFERED' } });
 *   const r = await envoy.exchange({ request: { headers: [[':method', 'POST'], ...], body_chunks: ['{}'] } });
 *   r.downstream.status; r.upstream.body; r.sent.map((m) => m.kind); r.counters.spurious_msgs_received;
 *   await envoy.close();
 */
import * as grpc from '@grpc/grpc-js';
import { resolveConfig, type EmulatorConfig, type ResolvedConfig } from './config.js';
import { Exchange, type ExchangeInput, type ExchangeResult } from './exchange.js';
import { newCounters, type Counters } from './filter.js';

export type { EmulatorConfig, ProcessingModeConfig } from './config.js';
export type {
  ChunkInput,
  DownstreamView,
  ExchangeInput,
  ExchangeResult,
  LocalReplyInfo,
  MessageInput,
  UpstreamRequest,
  UpstreamResponse,
  UpstreamSpec,
  UpstreamView,
  Wait,
} from './exchange.js';
export type { Counters, ReceivedMessage, SentMessage } from './filter.js';
export type { StreamEnd } from './side-stream.js';
export { HeaderList } from './headers.js';

export class EnvoyEmulator {
  /** counters summed over every exchange, like Envoy's filter stats */
  readonly counters: Counters = newCounters();
  private readonly cfg: ResolvedConfig;
  private readonly client: grpc.Client;

  /** Throws on a configuration Envoy would reject (e.g. static FULL_DUPLEX without trailers SEND). */
  constructor(
    target: string,
    private readonly config: EmulatorConfig = {},
  ) {
    this.cfg = resolveConfig(config);
    this.client = new grpc.Client(target, grpc.credentials.createInsecure(), {
      // Envoy gRPC has no receive limit unless configured.
      'grpc.max_receive_message_length': -1,
      'grpc.max_send_message_length': config.grpc?.max_send_message_length ?? -1,
      ...config.grpc?.channel_options,
    });
  }

  /** Runs one HTTP exchange; resolves once the client saw the end (or a reset) and the side stream closed. */
  async exchange(input: ExchangeInput): Promise<ExchangeResult> {
    const r = await new Exchange(this.cfg, this.client, input, this.config.grpc?.initial_metadata).run();
    for (const k of Object.keys(this.counters) as Array<keyof Counters>) this.counters[k] += r.counters[k];
    return r;
  }

  async close(): Promise<void> {
    this.client.close();
  }
}
