/** Starts a real tokenwarden server on a free loopback port for tests, collecting its records. */
import { createServer, type ServerHooks, type TokenwardenServer } from '../../src/server.js';
import { defaultConfig, type TokenwardenConfig } from '../../src/config/types.js';
import type { ExchangeRecord } from '../../src/domain.js';
import { createLogger } from '../../src/log.js';

export interface TestServer {
  server: TokenwardenServer;
  address: string;
  /** `host:port` of the admin server, when the test enabled it. */
  adminAddress: string | null;
  records: ExchangeRecord[];
  logs: string[];
  /** Resolves when `n` records have been made in total. */
  waitForRecords(n: number, timeoutMs?: number): Promise<ExchangeRecord[]>;
  stop(): Promise<void>;
}

export async function startTestServer(
  edit: (c: TokenwardenConfig) => void = () => {},
  hooks: ServerHooks = {},
): Promise<TestServer> {
  const config = defaultConfig();
  config.grpc.address = '127.0.0.1:0';
  config.admin.address = '';
  config.consumer.fingerprint_secret = 'test-secret';
  edit(config);
  const records: ExchangeRecord[] = [];
  const logs: string[] = [];
  const server = createServer(config, {
    logger: createLogger('debug', (l) => logs.push(l)),
    ...hooks,
    onExchange: (r) => {
      records.push(r);
      hooks.onExchange?.(r);
    },
  });
  const { grpcAddress, adminAddress } = await server.start();
  return {
    server,
    address: grpcAddress,
    adminAddress,
    records,
    logs,
    async waitForRecords(n, timeoutMs = 5000) {
      const until = Date.now() + timeoutMs;
      while (records.length < n) {
        if (Date.now() > until) throw new Error(`expected ${n} records, have ${records.length}`);
        await new Promise((r) => setTimeout(r, 5));
      }
      return records;
    },
    stop: () => server.shutdown(1000),
  };
}
