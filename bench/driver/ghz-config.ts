/**
 * A scenario as a ghz config (https://ghz.sh/docs/options): the same messages the driver sends, in
 * protobuf JSON form (proto field names, bytes as base64), for `ghz --config bench/ghz/NAME.json`
 * run from the repository root. ghz sends a stream's messages without waiting for each answer, so its
 * figures are for pipelined messages, not Envoy's message-by-message order the driver reproduces.
 */
import { ProcessingRequest } from '../../src/extproc/protocol.js';
import { scenarioSteps, type Scenario } from './scenarios.js';

export interface GhzConfig {
  proto: string;
  'import-paths': string[];
  call: string;
  host: string;
  insecure: boolean;
  concurrency: number;
  connections: number;
  duration: string;
  data: Record<string, unknown>[];
}

export function ghzConfig(s: Scenario): GhzConfig {
  return {
    proto: 'proto/envoy-wire/external_processor.proto',
    'import-paths': ['proto/envoy-wire'],
    call: 'envoy.service.ext_proc.v3.ExternalProcessor.Process',
    host: '127.0.0.1:50051',
    insecure: true,
    concurrency: 16,
    connections: 1,
    duration: '10s',
    data: scenarioSteps(s).map((step) =>
      ProcessingRequest.toObject(ProcessingRequest.fromObject(step.message), { bytes: String, longs: String }),
    ),
  };
}
