/**
 * Envoy API elements newer than the 1.31 snapshot that configs may use behind a
 * `# [Envoy >= 1.NN]` marker (from /work/shared/envoy-ext-proc.md §12.1). Knowing their shape lets
 * the validator still check the value and check that the marker names a late enough release.
 * Newer elements missing here are accepted unchecked when marked.
 */

export type NewerShape =
  | { kind: 'scalar'; type: 'bool' }
  /** `type` is a message that already exists in the snapshot. */
  | { kind: 'message'; type: string; repeated?: boolean }
  /** A message the snapshot does not have: only the marker can be checked. */
  | { kind: 'opaque' };

export interface NewerField {
  since: number;
  shape: NewerShape;
}

const EXT_PROC = 'envoy.extensions.filters.http.ext_proc.v3';
const TYPED_EXTENSION: NewerShape = { kind: 'message', type: 'envoy.config.core.v3.TypedExtensionConfig' };

/** Keyed by `<message full name>.<field name>`. */
export const NEWER_FIELDS: ReadonlyMap<string, NewerField> = new Map<string, NewerField>([
  [`${EXT_PROC}.ExternalProcessor.http_service`, { since: 32, shape: { kind: 'opaque' } }],
  [
    `${EXT_PROC}.ExternalProcessor.send_body_without_waiting_for_header_response`,
    { since: 32, shape: { kind: 'scalar', type: 'bool' } },
  ],
  [
    `${EXT_PROC}.ExternalProcessor.allowed_override_modes`,
    { since: 32, shape: { kind: 'message', type: `${EXT_PROC}.ProcessingMode`, repeated: true } },
  ],
  [`${EXT_PROC}.ExternalProcessor.on_processing_response`, { since: 34, shape: TYPED_EXTENSION }],
  [
    `${EXT_PROC}.ExternalProcessor.status_on_error`,
    { since: 36, shape: { kind: 'message', type: 'envoy.type.v3.HttpStatus' } },
  ],
  [`${EXT_PROC}.ExternalProcessor.processing_request_modifier`, { since: 36, shape: TYPED_EXTENSION }],
  [
    `${EXT_PROC}.ExternalProcessor.allow_content_length_header`,
    { since: 38, shape: { kind: 'scalar', type: 'bool' } },
  ],
  [
    `${EXT_PROC}.MetadataOptions.cluster_metadata_forwarding_namespaces`,
    { since: 37, shape: { kind: 'message', type: `${EXT_PROC}.MetadataOptions.MetadataNamespaces` } },
  ],
  [
    `${EXT_PROC}.ExtProcOverrides.failure_mode_allow`,
    { since: 35, shape: { kind: 'message', type: 'google.protobuf.BoolValue' } },
  ],
  [`${EXT_PROC}.ExtProcOverrides.processing_request_modifier`, { since: 36, shape: TYPED_EXTENSION }],
]);

/** Keyed by `<enum full name>.<VALUE>`. */
export const NEWER_ENUM_VALUES: ReadonlyMap<string, { since: number; number: number }> = new Map([
  [`${EXT_PROC}.ProcessingMode.BodySendMode.FULL_DUPLEX_STREAMED`, { since: 33, number: 4 }],
  [`${EXT_PROC}.ProcessingMode.BodySendMode.GRPC`, { since: 37, number: 5 }],
]);

/** Message types (for `@type`) that the snapshot does not have. */
export const NEWER_TYPES: ReadonlyMap<string, number> = new Map([
  ['envoy.extensions.http.ext_proc.response_processors.save_processing_response.v3.SaveProcessingResponse', 34],
  [
    'envoy.extensions.http.ext_proc.processing_request_modifiers.mapped_attribute_builder.v3.MappedAttributeBuilder',
    36,
  ],
  [`${EXT_PROC}.ExtProcHttpService`, 32],
]);
