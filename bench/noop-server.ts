/**
 * The baseline: an ext_proc server that does nothing. Every message gets an empty CONTINUE answer of
 * its own kind (nothing at all in observability mode, where Envoy ignores answers), on the same
 * grpc-js server options tokenwarden uses, so the ratio tokenwarden / no-op isolates tokenwarden's work.
 *
 *   npx tsx bench/noop-server.ts [PORT]      prints "noop ready grpc=127.0.0.1:PORT" once serving
 */
import * as grpc from '@grpc/grpc-js';
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
    if (observability || kind === undefined || call.writableEnded) return;
    call.write({ [kind]: {} } as WireProcessingResponse);
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
  });
  server.addService(extProcServiceDefinition, { Process: process_ });
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync(address, grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))),
  );
  return {
    address: `${address.slice(0, address.lastIndexOf(':'))}:${port}`,
    stop: () => new Promise<void>((resolve) => server.tryShutdown(() => resolve())),
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
