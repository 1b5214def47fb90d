/**
 * Renewal and the other calls a logged-in companion makes: a new certificate (new key) before the old one
 * expires, the host list brought up to date, and "may I?" questions for the explain API.
 *
 * - Renewal is due at two thirds of the certificate's lifetime (`renewalDueAt`); `renew` does it now.
 * - A renewal refreshes the login, makes a new key here, gets a certificate for it, re-materialises every host
 *   (new hosts get contexts, gone ones lose theirs) and only then stores the new key in the keychain and the
 *   state. The login over → `login-required` (console-session.ts); the Console away → `lastRenewalError`, and
 *   the old certificate keeps working until it expires.
 */
import { CompanionError } from './companion-errors.js';
import { describeCertificate, generateClientKey } from './client-key.js';
import type { Explanation } from './console-api.js';
import { readState, stateDirOf, writeState, type CompanionState, type HostEntry } from './companion-state.js';
import { withConsoleApi } from './console-session.js';
import { materialiseHosts } from './materialise-hosts.js';

export interface RenewResult {
  readonly serial: string;
  readonly notAfter: string;
  readonly hosts: readonly HostEntry[];
  /** How long the renewal took (ms). */
  readonly tookMs: number;
}

async function recordRenewalError(configDir: string, error: unknown): Promise<void> {
  if (error instanceof CompanionError && error.code === 'LOGIN_REQUIRED') return; // recorded as login-required
  const state = await readState(configDir);
  if (state) await writeState(configDir, { ...state, lastRenewalError: `${new Date().toISOString()}: ${(error as Error).message}` });
}

export async function renewCertificate(configDir: string, service?: string): Promise<RenewResult> {
  const started = performance.now();
  const newKey = generateClientKey(); // meanwhile the login is refreshed
  newKey.catch(() => undefined); // awaited below; not unhandled when the refresh fails first
  try {
    return await withConsoleApi(
      configDir,
      async (api, session) => {
        const key = await newKey;
        const [issued, hosts] = await Promise.all([api.issueCertificate(key.csr), api.myHosts()]);
        const tls = { ca: issued.ca, cert: issued.cert, key: key.key };
        const state = session.state;
        const entries = await materialiseHosts({ configDir, stateDir: stateDirOf(configDir), console: state.console, hosts, tls });
        await session.secrets.set(state.console, 'private-key', key.key);
        const cert = describeCertificate(issued.cert);
        await writeState(configDir, { ...state, cert: { pem: issued.cert, ca: issued.ca, ...cert, receivedAt: new Date().toISOString() }, hosts: entries, renewedAt: new Date().toISOString(), lastRenewalError: null });
        return { serial: cert.serial, notAfter: cert.notAfter, hosts: entries, tookMs: performance.now() - started };
      },
      service,
    );
  } catch (error) {
    await recordRenewalError(configDir, error);
    throw error;
  }
}

/** The host list from the Console, with the contexts brought up to date (same certificate and key). */
export async function syncHosts(configDir: string, service?: string): Promise<{ state: CompanionState; hosts: readonly HostEntry[] }> {
  return withConsoleApi(
    configDir,
    async (api, session) => {
      const state = session.state;
      const key = await session.secrets.get(state.console, 'private-key');
      if (!key) throw new CompanionError('LOGIN_REQUIRED', `your private key is not in the ${session.secrets.backend} any more; log in again: drawbridge login ${state.console}`);
      const hosts = await api.myHosts();
      const entries = await materialiseHosts({ configDir, stateDir: stateDirOf(configDir), console: state.console, hosts, tls: { ca: state.cert.ca, cert: state.cert.pem, key } });
      const next = { ...state, hosts: entries };
      await writeState(configDir, next);
      return { state: next, hosts: entries };
    },
    service,
  );
}

/** May the logged-in user run `action` on `host`? The Console's explain API, with the deciding rule. */
export async function explainAction(configDir: string, action: string, host: string, service?: string): Promise<Explanation> {
  return withConsoleApi(configDir, (api, session) => api.explain({ user: session.state.user, host, action }), service);
}
