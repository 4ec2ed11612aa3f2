/** What admin handlers return (written to the socket by http.ts), and the errors they throw. */

export interface Reply {
  status: number;
  headers: Record<string, string>;
  /** A whole body, or chunks written with backpressure (large exports). */
  body: string | AsyncIterable<string>;
}

export function jsonReply(status: number, value: unknown, headers: Record<string, string> = {}): Reply {
  return { status, headers: { 'content-type': 'application/json; charset=utf-8', ...headers }, body: `${JSON.stringify(value)}\n` };
}

/** An error with a status and a JSON body `{error: {code, message, parameter}}`. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly parameter: string | null = null,
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
  }

  reply(): Reply {
    return jsonReply(this.status, { error: { code: this.code, message: this.message, parameter: this.parameter } }, this.headers);
  }
}

/** A bad query parameter: 400 naming it. */
export function badParameter(parameter: string, message: string, code = 'invalid_parameter'): ApiError {
  return new ApiError(400, code, message, parameter);
}
