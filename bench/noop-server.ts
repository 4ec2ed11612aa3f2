/**
 * The baseline: an ext_proc server that does nothing, done right. Every message gets an empty
 * CONTINUE answer of its own kind (nothing at all in observability mode, where Envoy ignores answers),
 * on the same grpc-js server options tokenwarden uses, so the ratio tokenwarden / no-op isolates
 * tokenwarden's work. Like tokenwarden it lives under Node's HTTP/2 rules for Envoy's closes (spec
 * §1.6): it ends the RPC itself (status OK) right after answering the message that ends the response
 * (response_headers or response_body with end_of_stream, response_trailers), so Envoy has no open
 * stream to reset, and it runs tokenwarden's SessionWatcher with connection rotation, which retires a
 * connection (graceful GOAWAY) before Envoy's resets can use up nghttp2's rapid-reset allowance. A
 * no-op cannot tell which exchanges end at their request headers (tokenwarden's non-LLM traffic), so
 * those it ends only when Envoy half-closes, and Envoy's default close resets them.
 *
 *   npx tsx bench/noop-server.ts [PORT]      prints "noop ready grpc=127.0.0.1:PORT" once serving
 */
import * as grpc from '@grpc/grpc-js';
import { endsResponse } from '../src/extproc/messages.js';
import { SessionWatcher } from '../src/extproc/sessions.js';
import {
  extProcServiceDefinition,
  type WireProcessingRequest,
  type WireProcessingResponse,
} from '../src/extproc/protocol.js';

type Call = grpc.ServerDuplexStream<WireProcessingRequest, WireProcessingResponse>;

// tokenwarden's defaults (src/extproc/server.ts with grpc.max_receive_message_bytes = 64 MiB).
const MAX_MESSAGE_BYTES = 64 * 1024 * 1024;

function process_(call: Call): void {
  let observability: boolean | null = null;
  call.on('data', (msg: WireProcessingRequest) => {
    observability ??= msg.observability_mode === true;
    const kind = msg.request;
    if (kind === undefined || call.writableEnded) return;
    const last = endsResponse(msg);
    if (!observability) call.write({ [kind]: {} } as WireProcessingResponse);
    // The last answer Envoy can need: end the RPC now instead of leaving it for Envoy to reset.
    if (last) call.end();
  });
  call.on('end', () => {
    if (!call.writableEnded) call.end();
  });
  call.on('error', () => {});
}

export async function startNoopServer(address: string): Promise<{ address: string; stop(): Promise<void> }> {
  const server = new grpc.Server({
    'grpc.max_receive_message_length': MAX_MESSAGE_BYTES,
    'grpc.max_send_message_length': MAX_MESSAGE_BYTES,
    'grpc.keepalive_time_ms': 60_000,
    'grpc.keepalive_timeout_ms': 20_000,
    'grpc.keepalive_permit_without_calls': 1,
    'grpc-node.max_session_memory': Number.MAX_SAFE_INTEGER,
    'grpc.enable_channelz': 0,
  });
  server.addService(extProcServiceDefinition, { Process: process_ });
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync(address, grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))),
  );
  // tokenwarden's connection rotation and HTTP/2 windows (src/extproc/server.ts does the same).
  const sessions = new SessionWatcher({ rotate: true });
  if (!sessions.attach(server)) throw new Error('noop-server: this @grpc/grpc-js hides its HTTP/2 servers; no connection rotation');
  return {
    address: `${address.slice(0, address.lastIndexOf(':'))}:${port}`,
    stop: () =>
      new Promise<void>((resolve) => {
        sessions.shutdown();
        server.tryShutdown(() => resolve());
      }),
  };
}

const isMain = process.argv[1] !== undefined && /noop-server\.[cm]?[jt]s$/.test(process.argv[1]);
if (isMain) {
  const port = Number(process.argv[2] ?? '0');
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    process.stderr.write(`noop-server: not a port: ${process.argv[2]}\n`);
    process.exit(2);
  }
  const { address, stop } = await startNoopServer(`127.0.0.1:${port}`);
  process.stdout.write(`noop ready grpc=${address}\n`);
  const shutdown = (): void => void stop().then(() => process.exit(0));
  process.once('SIGTERM', shutdown);
  process.once('SIGINT', shutdown);
}
