/**
 * The companion's errors and the CLI's exit codes: one table, so every command means the same thing by the same
 * number and scripts can branch on it.
 *
 * - Every failure the user can act on is a CompanionError whose message says what to do next.
 * - `exitCode` comes from the error's code through EXIT_CODES; anything unexpected is FAILED (6).
 * - Denied (1) is an answer, not a failure: `can` uses it for "no".
 */
import { DrawbridgeError } from '../../shared/errors/drawbridge-error.js';

/** The CLI's exit codes (README "drawbridge CLI"). */
export const EXIT_CODES = Object.freeze({
  ok: 0,
  /** `can`: the Console says no. */
  denied: 1,
  /** Bad arguments, unknown host or action. */
  usage: 2,
  /** Not logged in, or the login ended (revoked, expired): `drawbridge login <url>` again. */
  loginRequired: 3,
  /** The Console could not be reached, or not verified. */
  consoleUnreachable: 4,
  /** No OS keychain and no explicit file fallback. */
  keychainUnavailable: 5,
  /** Anything else (a local file problem, an unexpected answer). */
  failed: 6,
  /** Ctrl-C or the login timed out: nothing was written. */
  cancelled: 130,
});

export type ExitCode = (typeof EXIT_CODES)[keyof typeof EXIT_CODES];

const CODES = {
  USAGE: EXIT_CODES.usage,
  NOT_LOGGED_IN: EXIT_CODES.loginRequired,
  LOGIN_REQUIRED: EXIT_CODES.loginRequired,
  LOGIN_REFUSED: EXIT_CODES.loginRequired,
  CONSOLE_UNREACHABLE: EXIT_CODES.consoleUnreachable,
  CONSOLE_UNTRUSTED: EXIT_CODES.consoleUnreachable,
  CONSOLE_ERROR: EXIT_CODES.failed,
  KEYCHAIN_UNAVAILABLE: EXIT_CODES.keychainUnavailable,
  CANCELLED: EXIT_CODES.cancelled,
  TIMED_OUT: EXIT_CODES.cancelled,
  FAILED: EXIT_CODES.failed,
} as const;

export type CompanionErrorCode = keyof typeof CODES;

export class CompanionError extends DrawbridgeError {
  override readonly name = 'CompanionError';
  readonly exitCode: ExitCode;
  constructor(code: CompanionErrorCode, message: string) {
    super(code, message, 400, true);
    this.exitCode = CODES[code];
  }
}

/** The exit code for any error a command threw (typed errors of the companion modules included). */
export function exitCodeOf(error: unknown): ExitCode {
  if (error instanceof CompanionError) return error.exitCode;
  const code = (error as { code?: unknown } | null)?.code;
  if (code === 'KEYCHAIN_UNAVAILABLE') return EXIT_CODES.keychainUnavailable;
  if (code === 'CONTEXT_NAME_INVALID' || code === 'CONTEXT_NOT_FOUND') return EXIT_CODES.usage;
  return EXIT_CODES.failed;
}

/** The message that tells a user whose login ended what to run. */
export const loginAgainMessage = (consoleUrl: string, why: string): string => `${why}; log in again: drawbridge login ${consoleUrl}`;
