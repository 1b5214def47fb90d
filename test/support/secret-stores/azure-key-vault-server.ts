/**
 * A protocol fake of Azure Key Vault and of the Microsoft Entra ID (Azure AD) endpoints its SDK authenticates
 * against: nothing of Azure can run here, so one HTTPS server (the Azure SDK refuses plain HTTP for bearer
 * tokens) speaks both wire protocols closely enough for @azure/keyvault-secrets and @azure/identity (MSAL) to
 * work unmodified:
 *
 * - Key Vault challenge-based authentication
 *   (https://learn.microsoft.com/azure/key-vault/general/authentication-requests-and-responses): a request
 *   without a valid bearer token is 401 with
 *   `WWW-Authenticate: Bearer authorization="<authorityHost>/<tenant>", resource="<resource>"` and
 *   `{"error":{"code":"Unauthorized","message":"AKV10000: …"}}`.
 * - `GET /secrets/<name>[/<version>]?api-version=…` (REST reference "Get Secret") → `{value, id, attributes}`;
 *   missing → 404 `SecretNotFound`; not granted → 403 `Forbidden` (`ForbiddenByRbac`). `GET /secrets` lists.
 * - Entra ID: `GET /<tenant>/v2.0/.well-known/openid-configuration` (OpenID Connect discovery, what MSAL reads
 *   to find the token endpoint when instance discovery is off) and `POST /<tenant>/oauth2/v2.0/token` with the
 *   client credentials grant (https://learn.microsoft.com/entra/identity-platform/v2-oauth2-client-creds-grant-flow):
 *   the client secret is checked (`invalid_client`, AADSTS7000215), the tenant must exist (AADSTS90002) and the
 *   scope must be `<resource>/.default`; issued tokens are bound to the tenant and client.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { bearerToken, opaqueToken, ProtocolServer, sendJson } from './protocol-server.js';

export class AzureKeyVaultServer {
  readonly server: ProtocolServer;
  /** tenant → client id → client secret */
  readonly clients = new Map<string, Map<string, string>>();
  /** secret name → versions, newest last */
  readonly secrets = new Map<string, { version: string; value: string }[]>();
  /** client ids that may not read secrets (RBAC denies) */
  readonly denied = new Set<string>();
  /** What the challenge names as resource. */
  resource = 'https://vault.azure.net';
  readonly #tokens = new Map<string, { tenant: string; clientId: string }>();

  constructor(tls: { cert: string; key: string }) {
    this.server = new ProtocolServer((req, body, res) => this.#handle(req, body, res), { tls });
  }

  /** Back to empty: no clients, secrets, denials or tokens; counters cleared. */
  reset(): void {
    this.clients.clear();
    this.secrets.clear();
    this.denied.clear();
    this.#tokens.clear();
    this.server.resetCounts();
  }

  addClient(tenant: string, clientId: string, secret: string): void {
    if (!this.clients.has(tenant)) this.clients.set(tenant, new Map());
    this.clients.get(tenant)!.set(clientId, secret);
  }

  setSecret(name: string, value: string): string {
    const version = opaqueToken('').replace(/[^a-z0-9]/gi, '').slice(0, 32).padEnd(32, '0');
    const list = this.secrets.get(name) ?? [];
    list.push({ version, value });
    this.secrets.set(name, list);
    return version;
  }

  /** The tenant every challenge names. */
  tenant = 'contoso-tenant';

  #handle(req: IncomingMessage, body: Buffer, res: ServerResponse): void {
    const url = new URL(req.url ?? '/', this.server.url);
    const path = url.pathname;

    const discovery = /^\/([^/]+)\/v2\.0\/\.well-known\/openid-configuration$/.exec(path);
    if (discovery && req.method === 'GET') {
      this.server.count('openid-configuration');
      const tenant = discovery[1]!;
      if (!this.clients.has(tenant)) return sendJson(res, 400, { error: 'invalid_tenant', error_description: `AADSTS90002: Tenant '${tenant}' not found.`, error_codes: [90002] });
      const base = `${this.server.url}/${tenant}`;
      return sendJson(res, 200, {
        token_endpoint: `${base}/oauth2/v2.0/token`,
        token_endpoint_auth_methods_supported: ['client_secret_post', 'private_key_jwt', 'client_secret_basic'],
        jwks_uri: `${base}/discovery/v2.0/keys`,
        response_modes_supported: ['query', 'fragment', 'form_post'],
        subject_types_supported: ['pairwise'],
        id_token_signing_alg_values_supported: ['RS256'],
        response_types_supported: ['code', 'id_token', 'code id_token', 'id_token token'],
        scopes_supported: ['openid', 'profile', 'email', 'offline_access'],
        issuer: `${base}/v2.0`,
        authorization_endpoint: `${base}/oauth2/v2.0/authorize`,
        device_authorization_endpoint: `${base}/oauth2/v2.0/devicecode`,
        end_session_endpoint: `${base}/oauth2/v2.0/logout`,
        tenant_region_scope: 'EU',
      });
    }

    const token = /^\/([^/]+)\/oauth2\/v2\.0\/token$/.exec(path);
    if (token && req.method === 'POST') {
      this.server.count('token');
      const tenant = token[1]!;
      const form = new URLSearchParams(body.toString('utf8'));
      const fail = (status: number, error: string, code: number, description: string) => sendJson(res, status, { error, error_description: `AADSTS${code}: ${description}`, error_codes: [code], timestamp: new Date().toISOString(), trace_id: opaqueToken(''), correlation_id: opaqueToken('') });
      const clients = this.clients.get(tenant);
      if (!clients) return fail(400, 'invalid_request', 90002, `Tenant '${tenant}' not found.`);
      if (form.get('grant_type') !== 'client_credentials') return fail(400, 'unsupported_grant_type', 70003, 'The app requested an unsupported grant type.');
      const clientId = form.get('client_id') ?? '';
      const expected = clients.get(clientId);
      if (expected === undefined) return fail(400, 'unauthorized_client', 700016, `Application with identifier '${clientId}' was not found in the directory.`);
      if (form.get('client_secret') !== expected) {
        this.server.count('bad-client-secret');
        return fail(401, 'invalid_client', 7000215, 'Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID.');
      }
      const scopes = (form.get('scope') ?? '').split(' ');
      if (!scopes.includes(`${this.resource}/.default`)) return fail(400, 'invalid_scope', 1002012, `The provided value for scope ${form.get('scope')} is not valid.`);
      const accessToken = opaqueToken('eyJ0eXAiOiJKV1Qi.');
      this.#tokens.set(accessToken, { tenant, clientId });
      return sendJson(res, 200, { token_type: 'Bearer', expires_in: 3599, ext_expires_in: 3599, access_token: accessToken });
    }

    if (path === '/secrets' || path.startsWith('/secrets/')) {
      if (!url.searchParams.get('api-version')) return sendJson(res, 400, { error: { code: 'BadParameter', message: 'The request URI contains an invalid API version.' } });
      const caller = this.#tokens.get(bearerToken(req) ?? '');
      if (!caller || caller.tenant !== this.tenant) {
        this.server.count('challenge');
        return sendJson(res, 401, { error: { code: 'Unauthorized', message: 'AKV10000: Request is missing a Bearer or PoP token.' } }, { 'www-authenticate': `Bearer authorization="${this.server.url}/${this.tenant}", resource="${this.resource}"` });
      }
      if (this.denied.has(caller.clientId)) return sendJson(res, 403, { error: { code: 'Forbidden', message: `Caller is not authorized to perform action on resource.\r\nIf role assignments, deny assignments or role definitions were changed recently, please observe propagation time.\r\nCaller: appid=${caller.clientId}\r\nAction: 'Microsoft.KeyVault/vaults/secrets/getSecret/action'`, innererror: { code: 'ForbiddenByRbac' } } });
      if (path === '/secrets') {
        this.server.count('list');
        const top = Number(url.searchParams.get('maxresults') ?? 25);
        return sendJson(res, 200, { value: [...this.secrets.keys()].slice(0, top).map((name) => ({ id: `${this.server.url}/secrets/${name}`, attributes: { enabled: true, created: 1_700_000_000, updated: 1_700_000_000, recoveryLevel: 'Recoverable+Purgeable' } })), nextLink: null });
      }
      const [, , name = '', version] = path.split('/').map(decodeURIComponent);
      this.server.count('get');
      const versions = this.secrets.get(name);
      const found = version ? versions?.find((v) => v.version === version) : versions?.at(-1);
      if (!found) return sendJson(res, 404, { error: { code: 'SecretNotFound', message: `A secret with (name/id) ${name}${version ? `/${version}` : ''} was not found in this key vault. If you recently deleted this secret you may be able to recover it using the correct recovery command. For help resolving this issue, please see https://go.microsoft.com/fwlink/?linkid=2125182` } });
      return sendJson(res, 200, { value: found.value, id: `${this.server.url}/secrets/${name}/${found.version}`, attributes: { enabled: true, created: 1_700_000_000, updated: 1_700_000_000, recoveryLevel: 'Recoverable+Purgeable', recoverableDays: 90 }, tags: {} });
    }

    this.server.unknown.push(`${req.method} ${path}`);
    return sendJson(res, 404, { error: { code: 'NotFound', message: 'not found' } });
  }
}
