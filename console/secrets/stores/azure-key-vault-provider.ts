/**
 * Azure Key Vault through the official clients: @azure/keyvault-secrets (SecretClient) with an
 * @azure/identity ClientSecretCredential (service principal, client credentials grant).
 *
 * - The SDK runs Key Vault's challenge flow: a first unauthenticated request, a 401 whose WWW-Authenticate names
 *   the tenant's authority and the resource, a token for that resource from the authority, then the request.
 * - `path` is the secret name, or `name/version` for one version; the value is plain unless it holds a JSON
 *   object, whose fields `key` picks.
 * - `caPem`: one pipeline policy sets an https Agent trusting the private CA on every request, both the
 *   vault's and the authority's (the credential's pipeline takes the same policy).
 * - testConnection reads the first page of secret properties: endpoint, credentials and the list permission.
 */
import type { Agent } from 'node:https';
import { ClientSecretCredential, AuthenticationError, CredentialUnavailableError } from '@azure/identity';
import { SecretClient } from '@azure/keyvault-secrets';
import { tlsAgent } from './http-json.js';
import type { SecretProvider, SecretRef } from './secret-provider.js';
import type { StoreConfigOf } from './store-config.js';
import { StoreError, transportError, underDeadline } from './store-error.js';
import { selectFromText } from './select-key.js';

type AzureConfig = StoreConfigOf<'azure-key-vault'>;

export class AzureKeyVaultProvider implements SecretProvider {
  readonly kind = 'azure-key-vault' as const;
  readonly #config: AzureConfig;
  readonly #timeoutMs: number;
  readonly #agent: Agent | undefined;
  readonly #client: SecretClient;
  readonly #address: string;

  constructor(config: AzureConfig, timeoutMs: number) {
    this.#config = config;
    this.#timeoutMs = timeoutMs;
    this.#address = new URL(config.vaultUrl).origin;
    const agent = (this.#agent = tlsAgent({ caPem: config.caPem }));
    const additionalPolicies = agent
      ? [{ position: 'perCall' as const, policy: { name: 'drawbridgeTlsAgent', sendRequest: (request: { agent?: Agent }, next: (r: never) => Promise<never>) => ((request.agent = agent), next(request as never)) } }]
      : [];
    const common = { additionalPolicies: additionalPolicies as never[], retryOptions: { maxRetries: 1, retryDelayInMs: 200 } };
    const credential = new ClientSecretCredential(config.tenantId, config.clientId, config.clientSecret, {
      ...common,
      ...(config.authorityHost ? { authorityHost: config.authorityHost } : {}),
      // Instance discovery asks login.microsoftonline.com about the authority: wrong for private authorities.
      disableInstanceDiscovery: config.authorityHost !== undefined,
    });
    this.#client = new SecretClient(config.vaultUrl, credential, { ...common, disableChallengeResourceVerification: config.disableChallengeResourceVerification });
  }

  async fetch(ref: SecretRef, signal?: AbortSignal): Promise<string> {
    const [name, version, ...rest] = ref.path.split('/');
    if (!name || rest.length > 0 || version === '') throw new StoreError('config', this.kind, `'${ref.path}' is not a Key Vault secret name (use 'name' or 'name/version')`);
    const secret = await this.#run(`secret '${ref.path}'`, (abortSignal) => this.#client.getSecret(name, { ...(version ? { version } : {}), abortSignal }), signal);
    if (typeof secret.value !== 'string') throw new StoreError('bad_response', this.kind, `secret '${ref.path}' came back without a value`);
    return selectFromText(this.kind, ref.path, secret.value, ref.key);
  }

  async testConnection(signal?: AbortSignal): Promise<void> {
    await this.#run('the list of secrets', async (abortSignal) => {
      await this.#client.listPropertiesOfSecrets({ abortSignal }).byPage({ maxPageSize: 1 }).next();
    }, signal);
  }

  close(): void {
    this.#agent?.destroy();
  }

  #run<T>(what: string, call: (abortSignal: AbortSignal) => Promise<T>, caller: AbortSignal | undefined): Promise<T> {
    return underDeadline(this.#timeoutMs, caller, call, (error, signals) => this.#mapError(what, error, signals));
  }

  #mapError(what: string, error: unknown, signals: Parameters<typeof transportError>[3]): StoreError {
    const { tenantId, clientId } = this.#config;
    const authority = this.#config.authorityHost ?? 'https://login.microsoftonline.com';
    if (error instanceof AuthenticationError || error instanceof CredentialUnavailableError || (error as { name?: string }).name === 'AuthenticationRequiredError') {
      const transport = transportError(this.kind, authority, error, signals);
      if (transport) return transport;
      const aadCode = (error as { errorResponse?: { error?: string } }).errorResponse?.error;
      return new StoreError('auth', this.kind, `${authority} refused a token to client '${clientId}' in tenant '${tenantId}'${aadCode ? ` (${aadCode})` : ''}: check tenantId, clientId and clientSecret (it may have expired)`);
    }
    const status = (error as { statusCode?: number }).statusCode;
    const code = (error as { code?: string }).code;
    if (status === 404) return new StoreError('not_found', this.kind, `${what} not found in ${this.#address}`);
    if (status === 403) return new StoreError('forbidden', this.kind, `client '${clientId}' may not read ${what} in ${this.#address} (${code ?? 'Forbidden'}): grant it 'Key Vault Secrets User' or a get/list access policy`);
    if (status === 401) return new StoreError('auth', this.kind, `${this.#address} did not accept the token of client '${clientId}' in tenant '${tenantId}': check tenantId (the vault's tenant) and the authority host`);
    if (status !== undefined) return new StoreError('bad_response', this.kind, `${this.#address} answered HTTP ${status}${code ? ` (${code})` : ''} for ${what}`);
    const transport = transportError(this.kind, this.#address, error, signals);
    if (transport) return transport;
    if (/challenge resource/i.test((error as Error).message ?? '')) return new StoreError('config', this.kind, `the vault at ${this.#address} names an authentication resource that is not its own domain: check vaultUrl (or, for a private endpoint, set disableChallengeResourceVerification)`);
    return new StoreError('bad_response', this.kind, `the request for ${what} to ${this.#address} failed (${(error as { name?: string }).name ?? 'unknown error'})`);
  }
}
