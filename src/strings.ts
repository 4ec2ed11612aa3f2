/** String helpers shared by the request path and the metering worker. */

/**
 * A copy of `s` that does not keep the string it was cut from alive. V8 represents a slice or regex
 * match of 13 or more characters as a view of its parent: kept in a cache, a record or a metric label,
 * it would hold the whole parent (a prompt, a megabyte `model` value) in memory with it. Slicing a
 * concatenation flattens it into a new string first, so the copy refers only to that. Use it on
 * strings cut from request data that outlive the request.
 */
export function detached(s: string): string {
  return (' ' + s).slice(1);
}
