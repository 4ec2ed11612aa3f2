/** Emulated Envoy filter configurations matching the deployments in envoy-configs/. */
import type { EmulatorConfig } from '../emulator/envoy.js';

/** The processing mode of envoy-configs/sidecar.yaml, strict about errors (no fail-open). */
export const SIDECAR: EmulatorConfig = {
  processing_mode: {
    request_header_mode: 'SEND',
    request_body_mode: 'BUFFERED',
    response_header_mode: 'SEND',
    response_body_mode: 'STREAMED',
  },
  allow_mode_override: true,
  allowed_override_modes: [{ response_header_mode: 'SKIP', request_body_mode: 'NONE', response_body_mode: 'NONE' }],
  failure_mode_allow: false,
  request_attributes: ['source.address'],
  metadata_options: { receiving_namespaces: { untyped: ['tokenwarden', 'io.envoy.ai_gateway'] } },
  buffer_limit: 64 * 1024 * 1024,
  message_timeout_ms: 2000,
};

export const OBSERVABILITY: EmulatorConfig = {
  processing_mode: {
    request_header_mode: 'SEND',
    request_body_mode: 'STREAMED',
    response_header_mode: 'SEND',
    response_body_mode: 'STREAMED',
  },
  observability_mode: true,
  failure_mode_allow: true,
  deferred_close_timeout_ms: 5000,
  request_attributes: ['source.address'],
  metadata_options: { receiving_namespaces: { untyped: ['tokenwarden'] } },
};

