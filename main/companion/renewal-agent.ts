/**
 * `drawbridge agent`: the long-running renewer (the desktop app's tray runs the same loop), so certificates
 * are renewed without the user doing anything.
 *
 * - Renews when two thirds of the certificate's lifetime have passed (`renewalDueAt`), re-reading the state
 *   every few seconds, so a new login, a manual `renew` or a logout is picked up without a restart.
 * - The Console away: retries with a growing pause (2 s doubling to 60 s); the old certificate works until it
 *   expires.
 * - The login over (revoked, expired, account changed): the state says "log in again" and the agent waits for
 *   a new login rather than asking the Console again and again.
 * - Ends when `signal` aborts (SIGINT/SIGTERM in the CLI).
 */
import { CompanionError } from './companion-errors.js';
import { readState, renewalDueAt } from './companion-state.js';
import { renewCertificate, type RenewResult } from './renew-certificate.js';

export interface AgentEvents {
  renewed?(result: RenewResult): void;
  failed?(error: Error, retryInMs: number | null): void;
}

const POLL_MS = 2_000;
const MIN_RETRY_MS = 2_000;
const MAX_RETRY_MS = 60_000;

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const timer = setTimeout(done, ms);
    function done(): void {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    }
    signal.addEventListener('abort', done, { once: true });
  });
}

export async function runRenewalAgent(configDir: string, opts: { signal: AbortSignal; events?: AgentEvents; service?: string }): Promise<void> {
  let retryMs = 0;
  let retryAt = 0;
  while (!opts.signal.aborted) {
    const state = await readState(configDir).catch(() => undefined);
    const now = Date.now();
    if (!state || state.session.state === 'login-required') {
      retryMs = 0;
      await sleep(POLL_MS, opts.signal);
      continue;
    }
    const due = Math.max(renewalDueAt(state.cert), retryAt);
    if (now < due) {
      await sleep(Math.min(due - now, POLL_MS), opts.signal);
      continue;
    }
    try {
      const result = await renewCertificate(configDir, opts.service);
      retryMs = 0;
      retryAt = 0;
      opts.events?.renewed?.(result);
    } catch (error) {
      const over = error instanceof CompanionError && (error.code === 'LOGIN_REQUIRED' || error.code === 'NOT_LOGGED_IN');
      retryMs = over ? 0 : Math.min(MAX_RETRY_MS, Math.max(MIN_RETRY_MS, retryMs * 2));
      retryAt = over ? 0 : Date.now() + retryMs;
      opts.events?.failed?.(error as Error, over ? null : retryMs);
    }
  }
}
