/**
 * Google Cloud Secret Manager through the official client (@google-cloud/secret-manager) in its REST fallback
 * mode (`fallback: true`: HTTP/1.1 + JSON instead of gRPC), authenticated as a service account by
 * google-auth-library's JWT client (OAuth 2.0 JWT bearer grant, RS256 assertion signed with the account's key).
 *
 * - `path` is the secret id, or `id/version` (default `latest`); the payload is plain unless it holds a JSON
 *   object, whose fields `key` picks.
 * - The client library would switch the JWT client to self-signed JWTs; we turn that off and keep the token
 *   grant, so one short-lived access token serves every call and a private token endpoint can be used.
 * - gtoken, under the JWT client, posts to a fixed `https://oauth2.googleapis.com/token`; the only seam
 *   google-auth-library offers is the transporter (a Gaxios instance) the JWT client is given. Its request
 *   interceptor sends the token request to `tokenUrl` when one is configured and puts the private-CA https Agent
 *   (`caPem`) on requests to the configured endpoints.
 * - testConnection lists one secret of the project: endpoint, credentials and the list permission.
 * - google-auth-library comes with @google-cloud/secret-manager (through google-gax); it is not a direct
 *   dependency of this repository.
 */
import type { Agent } from 'node:https';
import { SecretManagerServiceClient } from '@google-cloud/secret-manager';
import { gaxios, JWT } from 'google-auth-library';
import { tlsAgent } from './http-json.js';
import type { SecretProvider, SecretRef } from './secret-provider.js';
import type { StoreConfigOf } from './store-config.js';
import { StoreError, transportError, underDeadline } from './store-error.js';
import { selectFromText } from './select-key.js';

type GcpConfig = StoreConfigOf<'gcp-secret-manager'>;

const GOOGLE_TOKEN_URL = 'https://oauth2.googleapis.com/token';
const DEFAULT_ENDPOINT = 'https://secretmanager.googleapis.com';
const SCOPES = ['https://www.googleapis.com/auth/cloud-platform'];
// google.rpc.Code values the REST fallback maps HTTP statuses to.
const GRPC = { NOT_FOUND: 5, PERMISSION_DENIED: 7, UNAUTHENTICATED: 16, INVALID_ARGUMENT: 3, FAILED_PRECONDITION: 9, UNAVAILABLE: 14, DEADLINE_EXCEEDED: 4 } as const;

export class GcpSecretManagerProvider implements SecretProvider {
  readonly kind = 'gcp-secret-manager' as const;
  readonly #config: GcpConfig;
  readonly #timeoutMs: number;
  readonly #agent: Agent | undefined;
  readonly #client: SecretManagerServiceClient;
  readonly #address: string;
  readonly #tokenUrl: string;

  constructor(config: GcpConfig, timeoutMs: number) {
    this.#config = config;
    this.#timeoutMs = timeoutMs;
    const endpoint = new URL(config.apiEndpoint ?? DEFAULT_ENDPOINT);
    this.#address = endpoint.origin;
    this.#tokenUrl = config.tokenUrl ?? GOOGLE_TOKEN_URL;
    const agent = (this.#agent = tlsAgent({ caPem: config.caPem }));
    const ours = new Set([endpoint.origin, new URL(this.#tokenUrl).origin]);
    const transporter = new gaxios.Gaxios();
    transporter.interceptors.request.add({
      resolved: async (options) => {
        if (String(options.url) === GOOGLE_TOKEN_URL && this.#tokenUrl !== GOOGLE_TOKEN_URL) options.url = new URL(this.#tokenUrl);
        if (agent && ours.has(new URL(String(options.url)).origin)) options.agent = agent;
        // The token request has no signal of its own: bound it by our deadline too.
        options.timeout ??= timeoutMs;
        return options;
      },
    });
    const authClient = new JWT({ email: config.clientEmail, key: config.privateKey, scopes: SCOPES, transporter });
    const port = endpoint.port ? Number(endpoint.port) : endpoint.protocol === 'https:' ? 443 : 80;
    this.#client = new SecretManagerServiceClient({
      fallback: true,
      authClient,
      apiEndpoint: endpoint.hostname,
      port,
      protocol: endpoint.protocol.slice(0, -1),
      projectId: config.projectId,
    });
    // The client switches the JWT client to self-signed JWTs (no token endpoint); we keep the OAuth token grant,
    // so that tokenUrl (private or test token endpoints) is honoured and one short-lived token serves every call.
    authClient.useJWTAccessWithScope = false;
  }

  async fetch(ref: SecretRef, signal?: AbortSignal): Promise<string> {
    const [id, version = 'latest', ...rest] = ref.path.split('/');
    if (!id || rest.length > 0 || !version) throw new StoreError('config', this.kind, `'${ref.path}' is not a Secret Manager secret (use 'secret' or 'secret/version')`);
    const name = `projects/${this.#config.projectId}/secrets/${id}/versions/${version}`;
    const [response] = await this.#run(`secret '${ref.path}'`, (timeout) => this.#client.accessSecretVersion({ name }, { timeout, maxRetries: 0 }), signal);
    const data = response.payload?.data;
    if (data === undefined || data === null) throw new StoreError('bad_response', this.kind, `secret '${ref.path}' came back without a payload`);
    return selectFromText(this.kind, ref.path, typeof data === 'string' ? data : Buffer.from(data).toString('utf8'), ref.key);
  }

  async testConnection(signal?: AbortSignal): Promise<void> {
    await this.#run(`the secrets of project '${this.#config.projectId}'`, (timeout) => this.#client.listSecrets({ parent: `projects/${this.#config.projectId}`, pageSize: 1 }, { timeout, autoPaginate: false, maxRetries: 0 }), signal);
  }

  close(): void {
    void this.#client.close().catch(() => undefined);
    this.#agent?.destroy();
  }

  /** google-gax takes a timeout, not a signal: it gets our deadline, and underDeadline races the caller's signal. */
  #run<T>(what: string, call: (timeout: number) => Promise<T>, caller: AbortSignal | undefined): Promise<T> {
    return underDeadline(this.#timeoutMs, caller, () => call(this.#timeoutMs), (error, signals) => this.#mapError(what, error, signals));
  }

  #mapError(what: string, error: unknown, signals: Parameters<typeof transportError>[3]): StoreError {
    const { projectId, clientEmail } = this.#config;
    // A refused token request comes from gaxios with the token endpoint's OAuth error.
    const tokenResponse = (error as { response?: { status?: number; data?: { error?: unknown } }; config?: { url?: unknown } });
    const failedUrl = URL.canParse(String(tokenResponse.config?.url ?? '')) ? new URL(String(tokenResponse.config?.url)) : undefined;
    const tokenUrl = new URL(this.#tokenUrl);
    if (tokenResponse.response?.status !== undefined && failedUrl?.origin === tokenUrl.origin && failedUrl.pathname === tokenUrl.pathname) {
      const oauthError = typeof tokenResponse.response.data?.error === 'string' ? ` (${tokenResponse.response.data.error})` : '';
      return new StoreError('auth', this.kind, `${this.#tokenUrl} refused a token to service account '${clientEmail}'${oauthError}: check clientEmail and privateKey (the key may have been deleted or disabled)`);
    }
    const transport = transportError(this.kind, this.#address, error, signals);
    if (transport) return transport;
    // Errors come as a GoogleError (google.rpc code) or, when gaxios rejects the HTTP status first, a GaxiosError.
    const HTTP_TO_RPC: Record<number, number> = { 400: GRPC.INVALID_ARGUMENT, 401: GRPC.UNAUTHENTICATED, 403: GRPC.PERMISSION_DENIED, 404: GRPC.NOT_FOUND, 503: GRPC.UNAVAILABLE, 504: GRPC.DEADLINE_EXCEEDED };
    const rawCode = (error as { code?: unknown }).code;
    const httpStatus = tokenResponse.response?.status;
    // (A GaxiosError's numeric `code` is the HTTP status, not a google.rpc code.)
    const code = httpStatus !== undefined ? HTTP_TO_RPC[httpStatus] : typeof rawCode === 'number' ? rawCode : undefined;
    if (httpStatus !== undefined && code === undefined) return new StoreError('bad_response', this.kind, `${this.#address} answered HTTP ${httpStatus} for ${what}`);
    if (code === GRPC.NOT_FOUND) return new StoreError('not_found', this.kind, `${what} not found in project '${projectId}' at ${this.#address} (or it has no such version)`);
    if (code === GRPC.PERMISSION_DENIED) return new StoreError('forbidden', this.kind, `service account '${clientEmail}' may not read ${what} in project '${projectId}': grant it roles/secretmanager.secretAccessor (and secretmanager.secrets.list for the test)`);
    if (code === GRPC.UNAUTHENTICATED) return new StoreError('auth', this.kind, `${this.#address} did not accept the token of service account '${clientEmail}': check clientEmail and privateKey`);
    if (code === GRPC.FAILED_PRECONDITION) return new StoreError('not_found', this.kind, `${what} in project '${projectId}' is disabled or destroyed`);
    if (code === GRPC.UNAVAILABLE) return new StoreError('unreachable', this.kind, `${this.#address} is unavailable`);
    if (code === GRPC.DEADLINE_EXCEEDED) return new StoreError('timeout', this.kind, `${this.#address} did not answer in time`);
    if (typeof code === 'number') return new StoreError('bad_response', this.kind, `${this.#address} answered gRPC status ${code} for ${what}`);
    return new StoreError('bad_response', this.kind, `the request for ${what} to ${this.#address} failed (${(error as { name?: string }).name ?? 'unknown error'})`);
  }
}
