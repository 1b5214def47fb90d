/**
 * The few Console API calls the companion makes, with an OAuth access token (console/README: the token acts as
 * the user). Wire shapes are the Console's (`/api/v1/openapi.json`).
 *
 * - 401 means the login is over (revoked, user disabled, groups changed): LOGIN_REQUIRED, never a retry.
 * - Other errors carry the Console's own message (`{"error":{"code","message"}}`); a 400 is a usage error.
 */
import { CompanionError, loginAgainMessage } from './companion-errors.js';
import type { ConsoleFetch } from './console-https.js';
import type { MyHost } from '../../shared/wire/console-companion.js';

export type { ActionDecision, MyHost } from '../../shared/wire/console-companion.js';

export interface Me {
  readonly name: string;
  readonly role: string;
  readonly groups: readonly string[];
  readonly sessionExpiresAt: string;
}

export interface IssuedCertificate {
  readonly serial: string;
  readonly cert: string;
  readonly ca: string;
  readonly notAfter: string;
}

export interface Explanation {
  readonly allowed: boolean;
  readonly rule: string | null;
  readonly reason: string;
  readonly host: string;
  readonly action: string;
}

export interface ConsoleApi {
  me(): Promise<Me>;
  myHosts(): Promise<MyHost[]>;
  issueCertificate(csr: string): Promise<IssuedCertificate>;
  /** Revokes one of the user's own certificates (DELETE /api/v1/certs/{serial}). */
  revokeCertificate(serial: string): Promise<void>;
  explain(query: { user: string; host: string; action: string }): Promise<Explanation>;
}

export function consoleApi(consoleUrl: string, fetch: ConsoleFetch, accessToken: string): ConsoleApi {
  async function call<T>(method: string, path: string, json?: unknown): Promise<T> {
    const headers: Record<string, string> = { authorization: `Bearer ${accessToken}`, accept: 'application/json' };
    if (json !== undefined) headers['content-type'] = 'application/json';
    const r = await fetch(`${consoleUrl}${path}`, { method, headers, body: json === undefined ? undefined : JSON.stringify(json) });
    const text = await r.text();
    let body: unknown = null;
    try {
      body = text ? JSON.parse(text) : null;
    } catch {
      // not JSON: reported below by status
    }
    if (r.status >= 200 && r.status < 300) return body as T;
    const message = (body as { error?: { message?: string } } | null)?.error?.message ?? `HTTP ${r.status}`;
    if (r.status === 401) throw new CompanionError('LOGIN_REQUIRED', loginAgainMessage(consoleUrl, `the Console no longer accepts this login (${message})`));
    if (r.status === 400) throw new CompanionError('USAGE', message);
    throw new CompanionError('CONSOLE_ERROR', `the Console answered ${method} ${path} with ${r.status}: ${message}`);
  }
  return {
    me: () => call<Me>('GET', '/api/v1/auth/me'),
    myHosts: async () => (await call<{ items: MyHost[] }>('GET', '/api/v1/me/hosts')).items,
    issueCertificate: (csr) => call<IssuedCertificate>('POST', '/api/v1/certs', { csr }),
    revokeCertificate: async (serial) => {
      await call<unknown>('DELETE', `/api/v1/certs/${encodeURIComponent(serial)}`);
    },
    explain: (query) => call<Explanation>('POST', '/api/v1/explain', query),
  };
}
