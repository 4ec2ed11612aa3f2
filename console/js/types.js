// @ts-check
/**
 * JSDoc types of the admin API's answers the console reads (see the README's API section).
 * This module has no code; pages import its types with `import('./types.js')`.
 */

/**
 * @typedef {{ session: import('./api.js').Session, canWrite: boolean, params: URLSearchParams, go: (path: string, params?: Record<string, string | number | undefined>) => void }} Ctx
 * @typedef {(root: HTMLElement, ctx: Ctx) => void | Promise<void>} Page
 */

/**
 * @typedef {{ input: number, cached_input: number, cache_write: number, output: number, reasoning: number }} Tokens
 * @typedef {{ upstream_4xx: number, upstream_5xx: number, bad_input: number, truncated: number, aborted: number }} Errors
 * @typedef {{ first_seen: string, last_seen: string, requests: number, errors: Errors, tokens: { reported: Tokens, estimated: Tokens }, cost_micro_usd: number, cost_usd: number, unpriced_requests: number }} Rollup
 * @typedef {Rollup & { consumer: string, provider: string, model: string, last_api: string, response_models: string[], consumer_resolver: string }} InventoryRow
 * @typedef {{ id: string, status: ConsumerStatus, owner: string | null, labels: Record<string, string>, displayName: string | null, budgetTemplates: string[], resolvedBy: string }} Resolution
 * @typedef {'discovered' | 'added' | 'ignored'} ConsumerStatus
 * @typedef {Rollup & { consumer: string, models: number, resolution?: Resolution }} ConsumerRow
 * @typedef {Rollup & { provider: string, model: string, consumers: number }} ModelRow
 */

/**
 * @template T
 * @typedef {{ items: T[], total: number, offset: number, limit: number }} Paged
 */

/**
 * @typedef {'config' | 'api'} Source
 * @typedef {{ id: string, name: string, costCenter?: string, contacts?: string[], source: Source }} Owner
 * @typedef {{ id: string, match: string, priority: number, status: ConsumerStatus, owner?: string, labels?: Record<string, string>, budgetTemplates?: string[], source: Source }} ConsumerRule
 * @typedef {{ input_mtok?: number, cached_input_mtok?: number, cache_write_mtok?: number, output_mtok?: number }} Price
 * @typedef {{ id: string, provider: string, model: string, sanctioned: boolean, reviewed: boolean, displayName?: string, price?: Price, endpoint?: string, notes?: string, source?: Source, requests: number, costMicroUsd: number, consumers: number, responseModels: string[] }} ResourceRow
 * @typedef {'off' | 'monitor' | 'enforce'} PolicyMode
 * @typedef {{ id: string, mode: PolicyMode, allow: string[], source: Source }} Policy
 * @typedef {{ at: number, actor: string, action: 'create' | 'update' | 'delete', entity: string, id: string, before?: unknown, after?: unknown }} AuditEntry
 */

/**
 * @typedef {{ consumers?: string[], providers?: string[], models?: string[], apis?: string[], labels?: Record<string, string> }} Select
 * @typedef {{ per: string, timezone?: string, week_start?: string, seconds?: number, input_tokens?: number, output_tokens?: number, total_tokens?: number, requests?: number, cost_usd?: number }} LimitDef
 * @typedef {LimitDef & { unit: string, max: number, used: number, reserved: number, remaining: number, usd?: { max: string, used: string, reserved: string, remaining: string }, exhausted: boolean, window_start: string, window_end: string }} LimitState
 * @typedef {{ id: string, description?: string, source: Source, mode: 'monitor' | 'enforce', on_store_error: 'open' | 'closed', stop_streams: boolean, select: Select, template?: { id: string, group: string }, limits: LimitState[] }} BudgetView
 * @typedef {{ id: string, description?: string, source: Source, mode: 'monitor' | 'enforce', on_store_error: 'open' | 'closed', stop_streams: boolean, select: Select, group_by: string, limits: LimitDef[] }} TemplateView
 */

/**
 * @typedef {{ group: string, bucketStart: number | string, requests: number, errors: number, reported: Tokens, estimated: Tokens, costMicroUsd: number }} ShowbackRow
 * @typedef {{ bucket_start: string, requests: number, errors: number, tokens: { reported: Tokens, estimated: Tokens }, cost_micro_usd: number }} UsagePoint
 * @typedef {{ group_by: string, bucket: string, from: string, to: string, series: { group: string, points: UsagePoint[] }[] }} Usage
 */

export {};
