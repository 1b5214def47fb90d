/**
 * The Console API's error codes. Every error is answered as `{"error": {"code", "message", "field"?}}` with the
 * status below; a 5xx never exposes its detail.
 */
import { DrawbridgeError, errorTable } from '../shared/errors/drawbridge-error.js';

export const consoleErrors = errorTable({
  invalid_request: { status: 400 },
  unauthenticated: { status: 401 },
  forbidden: { status: 403 },
  not_found: { status: 404 },
  conflict: { status: 409 },
  gone: { status: 410 },       // a one-time or join token that was used or expired
  too_large: { status: 413 },
  too_many_requests: { status: 429 }, // failed logins slow the next ones down (auth/login-throttle.ts)
  config: { status: 500, expose: true },
  internal: { status: 500 },
});

/** A validation error that names the field. */
export class FieldError extends DrawbridgeError {
  constructor(readonly field: string, message: string) {
    super('invalid_request', `${field}: ${message}`, 400, true);
  }
}
