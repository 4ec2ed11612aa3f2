/** A bare ext_proc gRPC client for tests that need to misbehave in ways Envoy would not. */
import * as grpc from '@grpc/grpc-js';
import {
  decodeResponse,
  encodeRequest,
  PROCESS_PATH,
  type WireProcessingRequest,
  type WireProcessingResponse,
} from '../../src/extproc/protocol.js';

export interface RawStream {
  write(m: WireProcessingRequest): void;
  answers: WireProcessingResponse[];
  /** Resolves once `n` answers have arrived. */
  next(n: number, timeoutMs?: number): Promise<WireProcessingResponse[]>;
  status: Promise<grpc.StatusObject>;
  halfCloseAndCancel(): void;
  cancel(): void;
}

export function rawClient(target: string): { open(): RawStream; close(): void } {
  const client = new grpc.Client(target, grpc.credentials.createInsecure(), { 'grpc.max_send_message_length': -1 });
  return {
    open() {
      const call = client.makeBidiStreamRequest(
        PROCESS_PATH,
        (m: WireProcessingRequest) => encodeRequest(m),
        (b: Buffer) => decodeResponse(b),
      );
      const answers: WireProcessingResponse[] = [];
      call.on('data', (m: WireProcessingResponse) => answers.push(m));
      call.on('error', () => {});
      const status = new Promise<grpc.StatusObject>((resolve) => call.on('status', resolve));
      return {
        answers,
        write: (m) => call.write(m),
        async next(n, timeoutMs = 3000) {
          const until = Date.now() + timeoutMs;
          while (answers.length < n) {
            if (Date.now() > until) throw new Error(`expected ${n} answers, got ${answers.length}`);
            await new Promise((r) => setTimeout(r, 2));
          }
          return answers;
        },
        status,
        halfCloseAndCancel() {
          call.end();
          call.cancel();
        },
        cancel: () => call.cancel(),
      };
    },
    close: () => client.close(),
  };
}

export function headers(list: [string, string][]) {
  return { headers: list.map(([key, v]) => ({ key, raw_value: Buffer.from(v) })) };
}
