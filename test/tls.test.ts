/**
 * gRPC TLS and mTLS with certificates generated for the test (openssl): a client that trusts the
 * server's CA is served; plaintext clients, clients trusting another CA, and — when
 * require_client_cert is set — clients without a certificate or with one from another CA are refused.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { startTestServer, type TestServer } from './support/server.js';
import { headers } from './support/raw-client.js';
import { loadFixtures } from './support/fixtures.js';
import { decodeResponse, encodeRequest, PROCESS_PATH, type WireProcessingRequest, type WireProcessingResponse } from '../src/extproc/protocol.js';
import { defaultConfig } from '../src/config/types.js';
import { createServer } from '../src/server.js';
import { createLogger } from '../src/log.js';

const basic = loadFixtures().find((f) => f.name === 'openai_chat_completions_basic')!;

let dir: string;
const file = (name: string): string => path.join(dir, name);
const read = (name: string): Buffer => readFileSync(file(name));

function openssl(...args: string[]): void {
  execFileSync('openssl', args, { stdio: 'ignore' });
}

/** A self-signed CA `<ca>.pem` / `<ca>.key`. */
function makeCa(ca: string): void {
  openssl('req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '1', '-subj', `/CN=${ca}`, '-keyout', file(`${ca}.key`), '-out', file(`${ca}.pem`));
}

/** A leaf `<name>.pem` / `<name>.key` signed by `ca`, valid for localhost and 127.0.0.1. */
function makeLeaf(name: string, ca: string): void {
  openssl('req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-subj', `/CN=${name}`, '-keyout', file(`${name}.key`), '-out', file(`${name}.csr`));
  openssl('x509', '-req', '-in', file(`${name}.csr`), '-CA', file(`${ca}.pem`), '-CAkey', file(`${ca}.key`), '-CAcreateserial', '-days', '1', '-extfile', file('san.ext'), '-out', file(`${name}.pem`));
}

beforeAll(() => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'tw-tls-'));
  writeFileSync(file('san.ext'), 'subjectAltName=DNS:localhost,IP:127.0.0.1\n');
  makeCa('ca');
  makeCa('other-ca');
  makeLeaf('server', 'ca');
  makeLeaf('envoy', 'ca');
  makeLeaf('intruder', 'other-ca');
});

afterAll(() => rmSync(dir, { recursive: true, force: true }));

/**
 * Opens one ext_proc stream with `credentials` and sends request headers: resolves with the answer,
 * or with the gRPC status when the stream fails first (e.g. the TLS handshake was refused).
 */
async function exchange(address: string, credentials: grpc.ChannelCredentials): Promise<WireProcessingResponse | grpc.StatusObject> {
  const client = new grpc.Client(address, credentials);
  try {
    const call = client.makeBidiStreamRequest(PROCESS_PATH, (m: WireProcessingRequest) => encodeRequest(m), (b: Buffer) => decodeResponse(b), new grpc.Metadata(), {
      deadline: Date.now() + 5_000,
    });
    const answer = new Promise<WireProcessingResponse | grpc.StatusObject>((resolve) => {
      call.on('data', (m: WireProcessingResponse) => resolve(m));
      call.on('status', (s: grpc.StatusObject) => resolve(s));
      call.on('error', () => {});
    });
    call.write({ request_headers: { headers: headers(basic.request.headers) } });
    const result = await answer;
    call.cancel();
    return result;
  } finally {
    client.close();
  }
}

const served = (r: WireProcessingResponse | grpc.StatusObject): boolean => 'request_headers' in r && r.request_headers !== undefined;
const refused = (r: WireProcessingResponse | grpc.StatusObject): boolean => 'code' in r && r.code === grpc.status.UNAVAILABLE;

describe('gRPC over TLS (server certificate only)', () => {
  let srv: TestServer;
  beforeAll(async () => {
    srv = await startTestServer((c) => {
      c.grpc.address = 'localhost:0';
      c.grpc.tls = { cert_file: file('server.pem'), key_file: file('server.key'), require_client_cert: false };
    });
  });
  afterAll(() => srv.stop());

  it('serves a client that trusts the server CA', async () => {
    expect(served(await exchange(srv.address, grpc.credentials.createSsl(read('ca.pem'))))).toBe(true);
  });

  it('refuses a plaintext client', async () => {
    expect(refused(await exchange(srv.address, grpc.credentials.createInsecure()))).toBe(true);
  });

  it('is refused by a client that trusts another CA', async () => {
    expect(refused(await exchange(srv.address, grpc.credentials.createSsl(read('other-ca.pem'))))).toBe(true);
  });
});

describe('gRPC over mTLS (require_client_cert)', () => {
  let srv: TestServer;
  beforeAll(async () => {
    srv = await startTestServer((c) => {
      c.grpc.address = 'localhost:0';
      c.grpc.tls = { cert_file: file('server.pem'), key_file: file('server.key'), ca_file: file('ca.pem'), require_client_cert: true };
    });
  });
  afterAll(() => srv.stop());

  it('serves a client whose certificate the configured CA signed', async () => {
    const creds = grpc.credentials.createSsl(read('ca.pem'), read('envoy.key'), read('envoy.pem'));
    expect(served(await exchange(srv.address, creds))).toBe(true);
  });

  it('refuses a client without a certificate', async () => {
    expect(refused(await exchange(srv.address, grpc.credentials.createSsl(read('ca.pem'))))).toBe(true);
  });

  it('refuses a client whose certificate another CA signed', async () => {
    const creds = grpc.credentials.createSsl(read('ca.pem'), read('intruder.key'), read('intruder.pem'));
    expect(refused(await exchange(srv.address, creds))).toBe(true);
  });

  it('refuses a plaintext client', async () => {
    expect(refused(await exchange(srv.address, grpc.credentials.createInsecure()))).toBe(true);
  });
});

describe('TLS files', () => {
  it('a missing certificate file fails the start, naming the file', async () => {
    const config = defaultConfig();
    config.grpc.address = '127.0.0.1:0';
    config.admin.address = '';
    config.grpc.tls = { cert_file: file('absent.pem'), key_file: file('server.key'), require_client_cert: false };
    const server = createServer(config, { logger: createLogger('error', () => {}) });
    await expect(server.start()).rejects.toThrow(/absent\.pem/);
  });
});
