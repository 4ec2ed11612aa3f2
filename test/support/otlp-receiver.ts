/**
 * A real OTLP receiver for tests, on free loopback ports: HTTP (`POST /v1/metrics`, `/v1/traces`,
 * application/x-protobuf) and gRPC (`MetricsService/Export`, `TraceService/Export`). What arrives is
 * decoded with the opentelemetry-proto definitions that the @elastic/mockotlpserver package ships
 * (a devDependency; no .proto file is copied here) and kept, flattened, for assertions. With `hang`
 * it accepts every export and never answers, like a Collector that is stuck.
 */
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import { createRequire } from 'node:module';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';

const PROTO_ROOT = path.dirname(createRequire(import.meta.url).resolve('@elastic/mockotlpserver/package.json'));
const definitions = protoLoader.loadSync(
  ['opentelemetry/proto/collector/metrics/v1/metrics_service.proto', 'opentelemetry/proto/collector/trace/v1/trace_service.proto'],
  { includeDirs: [PROTO_ROOT], longs: String, enums: String, defaults: true, oneofs: true },
);
const METRICS_SERVICE = 'opentelemetry.proto.collector.metrics.v1.MetricsService';
const TRACE_SERVICE = 'opentelemetry.proto.collector.trace.v1.TraceService';

type Signal = 'metrics' | 'traces';
type Transport = 'http' | 'grpc';

function service(name: string): grpc.ServiceDefinition {
  return definitions[name] as grpc.ServiceDefinition;
}

function decode(signal: Signal, body: Buffer): DecodedRequest {
  return service(signal === 'metrics' ? METRICS_SERVICE : TRACE_SERVICE).Export!.requestDeserialize(body) as DecodedRequest;
}

// The decoded messages, as far as the tests read them (proto-loader: camelCase, longs as strings).
interface AnyValue {
  stringValue?: string;
  intValue?: string;
  doubleValue?: number;
  boolValue?: boolean;
  value?: string;
}
interface KeyValue {
  key: string;
  value: AnyValue;
}
interface DecodedNumberPoint {
  attributes: KeyValue[];
  asDouble?: number;
  asInt?: string;
  value?: string;
  startTimeUnixNano: string;
  timeUnixNano: string;
}
interface DecodedHistogramPoint {
  attributes: KeyValue[];
  count: string;
  sum: number;
  bucketCounts: string[];
  explicitBounds: number[];
  startTimeUnixNano: string;
  timeUnixNano: string;
}
interface DecodedMetric {
  name: string;
  unit: string;
  description: string;
  data: 'sum' | 'gauge' | 'histogram';
  sum?: { dataPoints: DecodedNumberPoint[]; aggregationTemporality: string; isMonotonic: boolean };
  gauge?: { dataPoints: DecodedNumberPoint[] };
  histogram?: { dataPoints: DecodedHistogramPoint[]; aggregationTemporality: string };
}
interface DecodedSpan {
  traceId: Buffer;
  spanId: Buffer;
  parentSpanId: Buffer;
  name: string;
  kind: string;
  startTimeUnixNano: string;
  endTimeUnixNano: string;
  attributes: KeyValue[];
  status: { code: string };
}
interface DecodedRequest {
  resourceMetrics?: { resource: { attributes: KeyValue[] }; scopeMetrics: { scope: { name: string }; metrics: DecodedMetric[] }[] }[];
  resourceSpans?: { resource: { attributes: KeyValue[] }; scopeSpans: { scope: { name: string }; spans: DecodedSpan[] }[] }[];
}

export type Attributes = Record<string, string | number | boolean>;

function attributes(kvs: KeyValue[]): Attributes {
  const out: Attributes = {};
  for (const { key, value } of kvs) {
    const v = value[value.value as keyof AnyValue] ?? value.stringValue;
    out[key] = value.value === 'intValue' ? Number(v) : (v as string | number | boolean);
  }
  return out;
}

/** One data point of one metric, flattened. */
export interface MetricPoint {
  /** Index of the export it came in (in `exports`). */
  exportIndex: number;
  transport: Transport;
  resource: Attributes;
  name: string;
  unit: string;
  type: 'sum' | 'gauge' | 'histogram';
  monotonic: boolean;
  temporality: string | undefined;
  attributes: Attributes;
  /** Sums and gauges. */
  value: number | undefined;
  /** Histograms. */
  histogram: { count: number; sum: number; bucketCounts: number[]; explicitBounds: number[] } | undefined;
  startTimeUnixNano: string;
  timeUnixNano: string;
}

export interface ReceivedSpan {
  transport: Transport;
  resource: Attributes;
  scope: string;
  traceId: string;
  spanId: string;
  /** '' for a root span. */
  parentSpanId: string;
  name: string;
  kind: string;
  startTimeUnixNano: string;
  endTimeUnixNano: string;
  attributes: Attributes;
  status: string;
}

export interface ReceivedExport {
  transport: Transport;
  signal: Signal;
  headers: Record<string, string>;
  /** The raw request body (HTTP) or message (gRPC), to search for text that must not be there. */
  body: Buffer;
}

export interface OtlpReceiver {
  /** Base URL of the HTTP receiver (the SDK appends /v1/metrics, /v1/traces). */
  readonly httpUrl: string;
  /** URL of the gRPC receiver. */
  readonly grpcUrl: string;
  readonly exports: ReceivedExport[];
  readonly points: MetricPoint[];
  readonly spans: ReceivedSpan[];
  /** The points of the last metrics export (cumulative: everything so far). */
  latestMetrics(): MetricPoint[];
  /** Exports received but (with `hang`) never answered. */
  readonly unanswered: number;
  close(): Promise<void>;
}

function flattenMetrics(exportIndex: number, transport: Transport, request: DecodedRequest): MetricPoint[] {
  const out: MetricPoint[] = [];
  for (const rm of request.resourceMetrics ?? []) {
    const resource = attributes(rm.resource.attributes);
    for (const sm of rm.scopeMetrics) {
      for (const m of sm.metrics) {
        const base = { exportIndex, transport, resource, name: m.name, unit: m.unit, type: m.data, startTimeUnixNano: '', timeUnixNano: '' };
        if (m.data === 'histogram') {
          for (const p of m.histogram!.dataPoints) {
            out.push({
              ...base,
              monotonic: false,
              temporality: m.histogram!.aggregationTemporality,
              attributes: attributes(p.attributes),
              value: undefined,
              histogram: { count: Number(p.count), sum: p.sum, bucketCounts: p.bucketCounts.map(Number), explicitBounds: p.explicitBounds },
              startTimeUnixNano: p.startTimeUnixNano,
              timeUnixNano: p.timeUnixNano,
            });
          }
          continue;
        }
        const data = m.data === 'sum' ? m.sum! : m.gauge!;
        for (const p of data.dataPoints) {
          out.push({
            ...base,
            monotonic: m.data === 'sum' && m.sum!.isMonotonic,
            temporality: m.data === 'sum' ? m.sum!.aggregationTemporality : undefined,
            attributes: attributes(p.attributes),
            value: p.value === 'asInt' ? Number(p.asInt) : p.asDouble,
            histogram: undefined,
            startTimeUnixNano: p.startTimeUnixNano,
            timeUnixNano: p.timeUnixNano,
          });
        }
      }
    }
  }
  return out;
}

function flattenSpans(transport: Transport, request: DecodedRequest): ReceivedSpan[] {
  const out: ReceivedSpan[] = [];
  for (const rs of request.resourceSpans ?? []) {
    const resource = attributes(rs.resource.attributes);
    for (const ss of rs.scopeSpans) {
      for (const s of ss.spans) {
        out.push({
          transport,
          resource,
          scope: ss.scope.name,
          traceId: s.traceId.toString('hex'),
          spanId: s.spanId.toString('hex'),
          parentSpanId: s.parentSpanId.toString('hex'),
          name: s.name,
          kind: s.kind,
          startTimeUnixNano: s.startTimeUnixNano,
          endTimeUnixNano: s.endTimeUnixNano,
          attributes: attributes(s.attributes),
          status: s.status.code,
        });
      }
    }
  }
  return out;
}

function flatHeaders(headers: IncomingHttpHeaders | grpc.Metadata): Record<string, string> {
  const map = headers instanceof grpc.Metadata ? headers.getMap() : headers;
  return Object.fromEntries(Object.entries(map).map(([k, v]) => [k, String(v)]));
}

export async function startOtlpReceiver(options: { hang?: boolean } = {}): Promise<OtlpReceiver> {
  const exports: ReceivedExport[] = [];
  const points: MetricPoint[] = [];
  const spans: ReceivedSpan[] = [];
  let unanswered = 0;
  const received = (transport: Transport, signal: Signal, headers: Record<string, string>, body: Buffer): void => {
    exports.push({ transport, signal, headers, body });
    const request = decode(signal, body);
    if (signal === 'metrics') points.push(...flattenMetrics(exports.length - 1, transport, request));
    else spans.push(...flattenSpans(transport, request));
  };

  const http: Server = createServer((req, res) => {
    const signal = req.url === '/v1/metrics' ? 'metrics' : req.url === '/v1/traces' ? 'traces' : null;
    if (req.method !== 'POST' || signal === null || req.headers['content-type'] !== 'application/x-protobuf') {
      res.writeHead(404).end();
      return;
    }
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      received('http', signal, flatHeaders(req.headers), Buffer.concat(chunks));
      if (options.hang) {
        unanswered += 1;
        return;
      }
      // An empty Export*ServiceResponse: full success.
      res.writeHead(200, { 'content-type': 'application/x-protobuf' }).end();
    });
  });
  await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve));

  const grpcServer = new grpc.Server();
  const serve = (name: string, signal: Signal): void => {
    const exportMethod = service(name).Export!;
    // The request is kept as bytes, so that HTTP and gRPC exports are decoded by the same code.
    const raw: grpc.ServiceDefinition = { Export: { ...exportMethod, requestDeserialize: (bytes: Buffer) => bytes } };
    const handler: grpc.handleUnaryCall<Buffer, unknown> = (call, callback) => {
      received('grpc', signal, flatHeaders(call.metadata), call.request);
      if (options.hang) {
        unanswered += 1;
        return;
      }
      callback(null, {});
    };
    grpcServer.addService(raw, { Export: handler });
  };
  serve(METRICS_SERVICE, 'metrics');
  serve(TRACE_SERVICE, 'traces');
  const grpcPort = await new Promise<number>((resolve, reject) =>
    grpcServer.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, port) => (err ? reject(err) : resolve(port))),
  );

  return {
    httpUrl: `http://127.0.0.1:${(http.address() as AddressInfo).port}`,
    grpcUrl: `http://127.0.0.1:${grpcPort}`,
    exports,
    points,
    spans,
    latestMetrics() {
      const last = exports.findLastIndex((e) => e.signal === 'metrics');
      return points.filter((p) => p.exportIndex === last);
    },
    get unanswered() {
      return unanswered;
    },
    async close() {
      grpcServer.forceShutdown();
      http.closeAllConnections();
      await new Promise<void>((resolve) => http.close(() => resolve()));
    },
  };
}
