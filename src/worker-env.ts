/**
 * What a process forked by `serve --workers` (cluster.ts) learns from its environment. Apart from
 * cluster.ts so that what only reads it (telemetry's instance id) does not import the primary's code.
 */
import cluster from 'node:cluster';

/** Set in a worker's environment: its 1-based index. */
export const WORKER_INDEX_ENV = 'TOKENWARDEN_WORKER_INDEX';
/** Set in a worker's environment: the admin address it must use instead of the configured one. */
export const WORKER_ADMIN_ENV = 'TOKENWARDEN_WORKER_ADMIN_ADDRESS';

/** True in a process forked by runPrimary. */
export function isWorker(): boolean {
  return cluster.isWorker && process.env[WORKER_INDEX_ENV] !== undefined;
}

/** This worker's 1-based index, or null outside `--workers`. */
export function workerIndex(): number | null {
  return isWorker() ? Number(process.env[WORKER_INDEX_ENV]) : null;
}

/** The admin address the primary assigned to this worker ('' = none), to use as a config override. */
export function workerAdminAddress(): string {
  return process.env[WORKER_ADMIN_ENV] ?? '';
}
