/**
 * CyberArk Central Credential Provider (CCP), the AIMWebService REST API. CyberArk publishes no Node.js client
 * for it and it is a single plain REST call, so this speaks it directly:
 * `GET <url>/AIMWebService/api/Accounts?AppID=…&Safe=…&Folder=…&Object=…`
 * → 200 with the account's properties (`Content` is the password), errors as `{ErrorCode, ErrorMsg}`.
 *
 * - `path` is `Object`, or `Safe/Object` to name another Safe than the configured default.
 * - `key` picks a property; without it the password (`Content`) is returned.
 * - The application authenticates by AppID, by the machine it runs on, or by a client certificate
 *   (`clientCertPem`/`clientKeyPem`); `caPem` trusts a CCP behind a private CA.
 * - Error messages carry CCP's ErrorCode, never ErrorMsg (it echoes the query).
 * - testConnection queries an object that cannot exist: "not found" (APPAP004E) proves that CCP is there and
 *   accepted the application for the Safe; an authentication error says what to fix.
 */
import type { Agent as HttpAgent } from 'node:http';
import { connectionAgent, storeRequest, type JsonResponse } from './http-json.js';
import type { SecretProvider, SecretRef } from './secret-provider.js';
import type { StoreConfigOf } from './store-config.js';
import { StoreError } from './store-error.js';
import { selectField } from './select-key.js';

type CyberArkConfig = StoreConfigOf<'cyberark'>;

const PROBE_OBJECT = 'drawbridge-connection-test-object-that-does-not-exist';

export class CyberArkProvider implements SecretProvider {
  readonly kind = 'cyberark' as const;
  readonly #config: CyberArkConfig;
  readonly #timeoutMs: number;
  readonly #agent: HttpAgent;
  readonly #address: string;

  constructor(config: CyberArkConfig, timeoutMs: number) {
    this.#config = config;
    this.#timeoutMs = timeoutMs;
    this.#agent = connectionAgent(new URL(config.url), config);
    this.#address = new URL(config.url).origin;
  }

  async fetch(ref: SecretRef, signal?: AbortSignal): Promise<string> {
    const res = await this.#query(ref.path, signal);
    if (res.status !== 200 || typeof res.json !== 'object' || res.json === null || Array.isArray(res.json)) throw this.#error(res, `secret '${ref.path}'`);
    return selectField(this.kind, ref.path, res.json as Record<string, unknown>, ref.key ?? 'Content');
  }

  async testConnection(signal?: AbortSignal): Promise<void> {
    const res = await this.#query(PROBE_OBJECT, signal);
    if (res.status === 404 && this.#errorCode(res) === 'APPAP004E') return;
    if (res.status === 200) return;
    throw this.#error(res, `the Safe '${this.#config.safe ?? '(any)'}'`);
  }

  close(): void {
    this.#agent.destroy();
  }

  #query(path: string, signal: AbortSignal | undefined): Promise<JsonResponse> {
    const base = new URL(this.#config.url);
    const url = new URL(`${base.pathname.replace(/\/+$/, '')}/AIMWebService/api/Accounts`, base);
    const slash = path.indexOf('/');
    const safe = slash > 0 ? path.slice(0, slash) : this.#config.safe;
    const object = slash > 0 ? path.slice(slash + 1) : path;
    url.searchParams.set('AppID', this.#config.appId);
    if (safe) url.searchParams.set('Safe', safe);
    if (this.#config.folder) url.searchParams.set('Folder', this.#config.folder);
    url.searchParams.set('Object', object);
    return storeRequest(this.kind, this.#address, url, { agent: this.#agent }, this.#timeoutMs, signal);
  }

  #errorCode(res: JsonResponse): string | undefined {
    const code = typeof res.json === 'object' && res.json !== null ? (res.json as { ErrorCode?: unknown }).ErrorCode : undefined;
    return typeof code === 'string' && /^[A-Z]+\d+[A-Z]?$/.test(code) ? code : undefined;
  }

  #error(res: JsonResponse, what: string): StoreError {
    const code = this.#errorCode(res);
    const tag = code ? ` (${code})` : '';
    const app = `application '${this.#config.appId}'`;
    // A 404 without CCP's own error code is a wrong URL, not a missing account.
    if (res.status === 404 && code?.startsWith('APPAP')) return new StoreError('not_found', this.kind, `${what} not found by CCP at ${this.#address}${tag}: check the Safe, Folder and Object name`);
    if (res.status === 401 || res.status === 403) return new StoreError('auth', this.kind, `CCP at ${this.#address} refused ${app} for ${what}${tag}: check the AppID, that it is allowed from this machine${this.#config.clientCertPem ? ' with this client certificate' : ''} and that its provider may retrieve from the Safe`);
    if (res.status === 400) return new StoreError('config', this.kind, `CCP at ${this.#address} rejected the query for ${what}${tag}: check the AppID, Safe, Folder and Object`);
    if (res.status >= 500) return new StoreError('unreachable', this.kind, `CCP at ${this.#address} failed (HTTP ${res.status}${tag}): check the Credential Provider and its Vault connection`);
    return new StoreError('bad_response', this.kind, `unexpected answer from ${this.#address} for ${what} (HTTP ${res.status}${tag}): is this CCP's AIMWebService?`);
  }
}
