/**
 * The one error base for every part of Drawbridge (oidc-provider/fastify style): a stable `code`, the HTTP
 * `status` to answer with, and `expose` saying whether `message` may be shown to the caller. Each service keeps
 * its own table of codes; nothing else decides what a client may read.
 *
 * - A message that is exposed never carries a secret, an upstream body or a stack.
 * - A non-exposed error is answered with a generic text for its status; the detail goes to the log only.
 */
export class DrawbridgeError extends Error {
  override readonly name: string = 'DrawbridgeError';
  constructor(
    readonly code: string,
    message: string,
    readonly status = 500,
    readonly expose = status < 500,
  ) {
    super(message);
  }
}

export interface ErrorSpec {
  readonly status: number;
  readonly expose?: boolean;
}

/** Builds a typed factory from a service's code table: `errors.body_too_large('…')`. */
export function errorTable<const T extends Record<string, ErrorSpec>>(table: T): { [K in keyof T]: (message: string) => DrawbridgeError } {
  const out = {} as { [K in keyof T]: (message: string) => DrawbridgeError };
  for (const code of Object.keys(table) as (keyof T & string)[]) {
    const spec = table[code]!;
    out[code] = (message: string) => new DrawbridgeError(code, message, spec.status, spec.expose ?? spec.status < 500);
  }
  return out;
}
