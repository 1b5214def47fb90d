/**
 * `status`: what the companion knows, from the state file alone (no Console, no keychain), so it answers fast
 * and offline — for the CLI and the desktop app's tray.
 *
 * - `state`: `logged-out`, `active`, `login-required` (the login ended: log in again) or `expired` (the
 *   certificate ran out, e.g. the Console was away at renewal time; `drawbridge renew` when it is back).
 * - Renewal: when it is due (two thirds of the lifetime), the last one, and the last failure if any.
 */
import { renewalDueAt, readState, type HostEntry } from './companion-state.js';
import { loginAgainMessage } from './companion-errors.js';

export interface CompanionStatus {
  readonly state: 'logged-out' | 'active' | 'login-required' | 'expired';
  readonly console?: string;
  readonly user?: string;
  readonly groups?: readonly string[];
  readonly secretBackend?: 'keychain' | 'file';
  readonly cert?: { readonly serial: string; readonly notBefore: string; readonly notAfter: string; readonly receivedAt: string };
  readonly renewal?: { readonly dueAt: string; readonly lastRenewedAt: string | null; readonly lastError: string | null };
  readonly loginExpiresAt?: string;
  readonly hosts?: readonly HostEntry[];
  /** What to do, when something must be done. */
  readonly action?: string;
}

export async function companionStatus(configDir: string, now = Date.now()): Promise<CompanionStatus> {
  const s = await readState(configDir);
  if (!s) return { state: 'logged-out', action: 'log in: drawbridge login <console-url>' };
  const expired = Date.parse(s.cert.notAfter) <= now;
  const state = s.session.state === 'login-required' ? 'login-required' : expired ? 'expired' : 'active';
  const action =
    s.session.state === 'login-required'
      ? loginAgainMessage(s.console, s.session.reason)
      : expired
        ? `your certificate expired on ${s.cert.notAfter}; renew it: drawbridge renew (or keep drawbridge agent running)`
        : undefined;
  return {
    state,
    console: s.console,
    user: s.user,
    groups: s.groups,
    secretBackend: s.secretBackend,
    cert: { serial: s.cert.serial, notBefore: s.cert.notBefore, notAfter: s.cert.notAfter, receivedAt: s.cert.receivedAt },
    renewal: { dueAt: new Date(renewalDueAt(s.cert)).toISOString(), lastRenewedAt: s.renewedAt, lastError: s.lastRenewalError },
    loginExpiresAt: s.loginExpiresAt,
    hosts: s.hosts,
    ...(action ? { action } : {}),
  };
}
