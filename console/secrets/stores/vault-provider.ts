/**
 * HashiCorp Vault, KV secrets engine v1 and v2. HashiCorp publishes no official Node.js client, so this speaks
 * Vault's HTTP API directly (https://developer.hashicorp.com/vault/api-docs):
 *
 * - KV v2 reads `GET /v1/<mount>/data/<path>` (value in `data.data`), KV v1 reads `GET /v1/<mount>/<path>`
 *   (value in `data`). A KV secret is always a map, so `key` is required.
 * - Token auth sends `X-Vault-Token`; AppRole logs in with `POST /v1/auth/<mount>/login` {role_id, secret_id}
 *   and uses `auth.client_token`, logging in again once when a read answers 403 (the token expired).
 * - `X-Vault-Namespace` when a namespace is configured.
 * - A 403 is told apart: token rejected (auth) versus token valid but not allowed to read (forbidden), by asking
 *   `GET /v1/auth/token/lookup-self`.
 */
import type { Agent as HttpAgent } from 'node:http';
import { connectionAgent, storeRequest, type JsonResponse } from './http-json.js';
import type { SecretProvider, SecretRef } from './secret-provider.js';
import type { StoreConfigOf } from './store-config.js';
import { StoreError } from './store-error.js';
import { selectField } from './select-key.js';

type VaultConfig = StoreConfigOf<'vault'>;

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const encodePath = (path: string) => path.split('/').map(encodeURIComponent).join('/');

export class VaultProvider implements SecretProvider {
  readonly kind = 'vault' as const;
  readonly #config: VaultConfig;
  readonly #timeoutMs: number;
  readonly #agent: HttpAgent;
  readonly #address: string;
  #token: string | undefined;

  constructor(config: VaultConfig, timeoutMs: number) {
    this.#config = config;
    this.#timeoutMs = timeoutMs;
    this.#agent = connectionAgent(new URL(config.address), { caPem: config.caPem });
    this.#address = new URL(config.address).origin;
    if (config.auth.method === 'token') this.#token = config.auth.token;
  }

  async fetch(ref: SecretRef, signal?: AbortSignal): Promise<string> {
    const data = await this.#read(ref.path, signal);
    return selectField(this.kind, ref.path, data, ref.key);
  }

  async testConnection(signal?: AbortSignal): Promise<void> {
    const health = await this.#call('GET', '/v1/sys/health?standbyok=true&perfstandbyok=true', undefined, signal, false);
    if (health.status === 503) throw new StoreError('unreachable', this.kind, `Vault at ${this.#address} is sealed: unseal it`);
    if (health.status === 501) throw new StoreError('unreachable', this.kind, `Vault at ${this.#address} is not initialised`);
    if (health.status !== 200 && health.status !== 429 && health.status !== 473) throw new StoreError('bad_response', this.kind, `${this.#address} does not answer like Vault (GET /v1/sys/health: HTTP ${health.status}): check the address`);
    if (this.#config.auth.method === 'approle') await this.#login(signal);
    else if (!(await this.#tokenValid(signal))) throw this.#tokenRejected();
    const mount = this.#config.mount;
    const res = await this.#call('GET', `/v1/sys/internal/ui/mounts/${encodePath(mount)}`, undefined, signal);
    if (res.status === 403) throw new StoreError('forbidden', this.kind, `${this.#who()} has no access to the mount '${mount}' at ${this.#address} (or nothing is mounted there): check its policy`);
    if (res.status === 400 || res.status === 404) throw new StoreError('config', this.kind, `no secrets engine is mounted at '${mount}' on ${this.#address}: check mount`);
    const data = isObject(res.json) && isObject(res.json['data']) ? res.json['data'] : undefined;
    if (res.status !== 200 || !data) throw this.#unexpected(res, `the mount '${mount}'`);
    const options = isObject(data['options']) ? data['options'] : {};
    const version = data['type'] === 'generic' ? '1' : String(options['version'] ?? '1');
    if (data['type'] !== 'kv' && data['type'] !== 'generic') throw new StoreError('config', this.kind, `the mount '${mount}' on ${this.#address} is a '${String(data['type'])}' engine, not KV: check mount`);
    if (version !== String(this.#config.kvVersion)) throw new StoreError('config', this.kind, `the mount '${mount}' on ${this.#address} is KV v${version}, configured as v${this.#config.kvVersion}: set kvVersion to ${version}`);
  }

  close(): void {
    this.#agent.destroy();
  }

  async #read(path: string, signal: AbortSignal | undefined): Promise<Record<string, unknown>> {
    const { mount, kvVersion } = this.#config;
    const apiPath = kvVersion === 2 ? `/v1/${encodePath(mount)}/data/${encodePath(path)}` : `/v1/${encodePath(mount)}/${encodePath(path)}`;
    let res = await this.#call('GET', apiPath, undefined, signal);
    if (res.status === 403 && this.#config.auth.method === 'approle') {
      this.#token = undefined; // expired or revoked: one fresh login
      res = await this.#call('GET', apiPath, undefined, signal);
    }
    if (res.status === 404) throw new StoreError('not_found', this.kind, `secret '${path}' not found in KV v${kvVersion} mount '${mount}' at ${this.#address}`);
    if (res.status === 403) {
      if (this.#config.auth.method === 'token' && !(await this.#tokenValid(signal))) throw this.#tokenRejected();
      throw new StoreError('forbidden', this.kind, `${this.#who()} may not read '${mount}/${path}' at ${this.#address}: grant read on ${kvVersion === 2 ? `${mount}/data/${path}` : `${mount}/${path}`} in its policy`);
    }
    const data = isObject(res.json) ? res.json['data'] : undefined;
    const fields = kvVersion === 2 ? (isObject(data) ? data['data'] : undefined) : data;
    if (res.status !== 200 || !isObject(fields)) throw this.#unexpected(res, `secret '${path}'`);
    return fields;
  }

  /** One request, authenticated unless `authenticated` is false. */
  async #call(method: string, path: string, body: unknown, signal: AbortSignal | undefined, authenticated = true): Promise<JsonResponse> {
    const headers: Record<string, string> = {};
    if (this.#config.namespace) headers['x-vault-namespace'] = this.#config.namespace;
    if (authenticated) headers['x-vault-token'] = this.#token ?? (await this.#login(signal));
    const res = await storeRequest(this.kind, this.#address, new URL(path, this.#address), { method, headers, body, agent: this.#agent }, this.#timeoutMs, signal);
    if (res.status === 503 && !path.startsWith('/v1/sys/health')) throw new StoreError('unreachable', this.kind, `Vault at ${this.#address} is sealed or unavailable (HTTP 503)`);
    return res;
  }

  /** AppRole login; the new token is kept for the next requests. */
  async #login(signal: AbortSignal | undefined): Promise<string> {
    const auth = this.#config.auth;
    if (auth.method !== 'approle') throw this.#tokenRejected();
    const res = await this.#call('POST', `/v1/auth/${encodePath(auth.mount)}/login`, { role_id: auth.roleId, secret_id: auth.secretId }, signal, false);
    if (res.status === 400 || res.status === 401 || res.status === 403) throw new StoreError('auth', this.kind, `AppRole login at ${this.#address}/v1/auth/${auth.mount}/login was refused (HTTP ${res.status}): check the AppRole role_id and secret_id (the secret_id may have expired or reached its use limit)`);
    if (res.status === 404) throw new StoreError('config', this.kind, `no AppRole auth method is mounted at 'auth/${auth.mount}' on ${this.#address}: check the AppRole mount`);
    const token = isObject(res.json) && isObject(res.json['auth']) ? res.json['auth']['client_token'] : undefined;
    if (res.status !== 200 || typeof token !== 'string' || !token) throw this.#unexpected(res, 'the AppRole login');
    this.#token = token;
    return token;
  }

  async #tokenValid(signal: AbortSignal | undefined): Promise<boolean> {
    const res = await this.#call('GET', '/v1/auth/token/lookup-self', undefined, signal);
    if (res.status === 200) return true;
    if (res.status === 401 || res.status === 403) return false;
    throw this.#unexpected(res, 'the token lookup');
  }

  #tokenRejected(): StoreError {
    return new StoreError('auth', this.kind, `Vault at ${this.#address} rejected the token: check the token (it may have expired or been revoked)${this.#config.namespace ? ` and the namespace '${this.#config.namespace}'` : ', and whether it lives in a Vault Enterprise namespace that must be configured'}`);
  }

  #who(): string {
    return this.#config.auth.method === 'approle' ? `the AppRole '${this.#config.auth.roleId}'` : 'the token';
  }

  #unexpected(res: JsonResponse, what: string): StoreError {
    return new StoreError('bad_response', this.kind, `unexpected answer from ${this.#address} for ${what} (HTTP ${res.status}): is this Vault, and the mount KV v${this.#config.kvVersion}?`);
  }
}
