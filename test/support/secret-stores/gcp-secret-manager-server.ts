/**
 * A protocol fake of Google Cloud Secret Manager's REST API and of Google's OAuth 2.0 token endpoint: nothing of
 * Google Cloud can run here, so this speaks what @google-cloud/secret-manager in REST fallback mode
 * (`fallback: true`, HTTP/1.1 + JSON) and google-auth-library's service account client send:
 *
 * - `POST /token` with the JWT bearer grant (RFC 7523;
 *   https://developers.google.com/identity/protocols/oauth2/service-account#httprest): the RS256 assertion is
 *   verified with the service account's public key, and its claims checked (iss = the account, aud =
 *   `https://oauth2.googleapis.com/token`, a scope, iat/exp within the hour). Failures are 400 `invalid_grant`.
 * - `GET /v1/projects/<p>/secrets/<s>/versions/<v>:access` (REST reference `projects.secrets.versions.access`)
 *   → `{name, payload: {data: <base64>}}`; `latest` is the newest version. `GET /v1/projects/<p>/secrets`
 *   (`projects.secrets.list`). Errors in Google's JSON shape `{"error": {code, message, status}}`: 401
 *   UNAUTHENTICATED without a valid token, 403 PERMISSION_DENIED, 404 NOT_FOUND.
 */
import { createPublicKey, verify, type KeyObject } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { bearerToken, opaqueToken, ProtocolServer, sendJson, type ListenOptions } from './protocol-server.js';

const GOOGLE_TOKEN_AUDIENCE = 'https://oauth2.googleapis.com/token';
const PROJECT_NUMBER = '123456789';

export class GcpSecretManagerServer {
  readonly server: ProtocolServer;
  /** service account email → public key */
  readonly accounts = new Map<string, KeyObject>();
  /** `<project>/<secret>` → versions (1-based), newest last */
  readonly secrets = new Map<string, string[]>();
  /** accounts denied access to secrets */
  readonly denied = new Set<string>();
  readonly #tokens = new Map<string, string>();

  constructor(options: ListenOptions = {}) {
    this.server = new ProtocolServer((req, body, res) => this.#handle(req, body, res), options);
  }

  /** Back to empty: no accounts, secrets, denials or tokens; counters cleared. */
  reset(): void {
    this.accounts.clear();
    this.secrets.clear();
    this.denied.clear();
    this.#tokens.clear();
    this.server.resetCounts();
  }

  addServiceAccount(email: string, publicKeyPem: string): void {
    this.accounts.set(email, createPublicKey(publicKeyPem));
  }

  addVersion(project: string, secret: string, value: string): void {
    const key = `${project}/${secret}`;
    this.secrets.set(key, [...(this.secrets.get(key) ?? []), value]);
  }

  #error(res: ServerResponse, code: number, status: string, message: string): void {
    sendJson(res, code, { error: { code, message, status } });
  }

  /** The service account of a valid assertion, or why it is not. */
  #verifyAssertion(assertion: string): { email: string } | { why: string } {
    const parts = assertion.split('.');
    if (parts.length !== 3) return { why: 'Invalid JWT: Token must be a short-lived token and in a reasonable timeframe' };
    const [h, p, s] = parts as [string, string, string];
    let header: { alg?: string };
    let claims: { iss?: string; aud?: string; scope?: string; iat?: number; exp?: number };
    try {
      header = JSON.parse(Buffer.from(h, 'base64url').toString('utf8')) as typeof header;
      claims = JSON.parse(Buffer.from(p, 'base64url').toString('utf8')) as typeof claims;
    } catch {
      return { why: 'Invalid JWT' };
    }
    if (header.alg !== 'RS256') return { why: 'Invalid JWT Signature.' };
    const key = this.accounts.get(claims.iss ?? '');
    if (!key) return { why: 'Invalid grant: account not found' };
    if (!verify('sha256', Buffer.from(`${h}.${p}`), key, Buffer.from(s, 'base64url'))) return { why: 'Invalid JWT Signature.' };
    const now = Date.now() / 1000;
    if (claims.aud !== GOOGLE_TOKEN_AUDIENCE) return { why: 'Invalid JWT: Failed audience check.' };
    if (!claims.scope) return { why: 'Invalid OAuth scope or ID token audience provided.' };
    if (typeof claims.iat !== 'number' || typeof claims.exp !== 'number' || claims.iat > now + 300 || claims.exp < now || claims.exp - claims.iat > 3600) return { why: 'Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable timeframe. Check your iat and exp values in the JWT claim.' };
    return { email: claims.iss! };
  }

  #handle(req: IncomingMessage, body: Buffer, res: ServerResponse): void {
    const url = new URL(req.url ?? '/', this.server.url);
    const path = decodeURIComponent(url.pathname);

    if (path === '/token' && req.method === 'POST') {
      this.server.count('token');
      const form = new URLSearchParams(body.toString('utf8'));
      if (form.get('grant_type') !== 'urn:ietf:params:oauth:grant-type:jwt-bearer') return sendJson(res, 400, { error: 'unsupported_grant_type', error_description: 'Invalid grant_type' });
      const result = this.#verifyAssertion(form.get('assertion') ?? '');
      if ('why' in result) {
        this.server.count('bad-assertion');
        return sendJson(res, 400, { error: 'invalid_grant', error_description: result.why });
      }
      const token = opaqueToken('ya29.');
      this.#tokens.set(token, result.email);
      return sendJson(res, 200, { access_token: token, expires_in: 3599, token_type: 'Bearer' });
    }

    const access = /^\/v1\/projects\/([^/]+)\/secrets\/([^/]+)\/versions\/([^/:]+):access$/.exec(path);
    const list = /^\/v1\/projects\/([^/]+)\/secrets$/.exec(path);
    if (!(access && req.method === 'GET') && !(list && req.method === 'GET')) {
      this.server.unknown.push(`${req.method} ${path}`);
      return this.#error(res, 404, 'NOT_FOUND', `The requested URL ${path} was not found on this server.`);
    }
    const email = this.#tokens.get(bearerToken(req) ?? '');
    if (!email) return this.#error(res, 401, 'UNAUTHENTICATED', 'Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other valid authentication credential.');

    if (list) {
      this.server.count('list');
      const project = list[1]!;
      if (this.denied.has(email)) return this.#error(res, 403, 'PERMISSION_DENIED', `Permission 'secretmanager.secrets.list' denied for resource 'projects/${project}' (or it may not exist).`);
      const pageSize = Number(url.searchParams.get('pageSize') ?? 25);
      const secrets = [...this.secrets.keys()].filter((k) => k.startsWith(`${project}/`)).slice(0, pageSize).map((k) => ({ name: `projects/${PROJECT_NUMBER}/secrets/${k.slice(project.length + 1)}`, replication: { automatic: {} }, createTime: '2024-01-01T00:00:00Z', etag: '"1"' }));
      return sendJson(res, 200, { secrets, totalSize: secrets.length });
    }
    const [, project, secret, version] = access! as unknown as [string, string, string, string];
    this.server.count('access');
    const name = `projects/${project}/secrets/${secret}/versions/${version}`;
    if (this.denied.has(email)) return this.#error(res, 403, 'PERMISSION_DENIED', `Permission 'secretmanager.versions.access' denied for resource '${name}' (or it may not exist).`);
    const versions = this.secrets.get(`${project}/${secret}`);
    const index = version === 'latest' ? (versions?.length ?? 0) : Number(version);
    const value = versions && Number.isInteger(index) && index >= 1 ? versions[index - 1] : undefined;
    if (value === undefined) return this.#error(res, 404, 'NOT_FOUND', versions ? `Secret Version [${name}] not found.` : `Secret [projects/${PROJECT_NUMBER}/secrets/${secret}] not found or has no versions.`);
    return sendJson(res, 200, { name: `projects/${PROJECT_NUMBER}/secrets/${secret}/versions/${index}`, payload: { data: Buffer.from(value).toString('base64') } });
  }
}
