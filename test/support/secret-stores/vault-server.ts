/**
 * A protocol fake of HashiCorp Vault's HTTP API: no real Vault can run here, so this speaks the subset the
 * Vault provider uses, with Vault's paths, JSON shapes, status codes and `{"errors": [...]}` bodies, following
 * https://developer.hashicorp.com/vault/api-docs (secret/kv/kv-v2, secret/kv/kv-v1, auth/approle,
 * auth/token#lookup-a-token-self, system/health, system/internal-ui-mounts).
 *
 * - `X-Vault-Token` on every authenticated route; an unknown or revoked token is 403 "permission denied", as in
 *   Vault. Tokens carry the path prefixes they may read (Vault policies reduced to read on prefixes).
 * - `X-Vault-Namespace` must match the configured namespace, if any.
 * - AppRole login with role_id + secret_id issues a fresh token; a wrong pair is 400 "invalid role or secret ID".
 * - KV v2 `GET /v1/<mount>/data/<path>` → `data.data` + `data.metadata`; KV v1 `GET /v1/<mount>/<path>` → `data`;
 *   a missing secret is 404 `{"errors": []}`.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { opaqueToken, ProtocolServer, sendJson, type ListenOptions } from './protocol-server.js';

interface TokenEntry {
  /** Readable `<mount>/<path>` prefixes; '*' for everything. */
  readonly read: readonly string[] | '*';
}

export class VaultServer {
  readonly server: ProtocolServer;
  /** mount → KV version and secrets (path → fields). */
  readonly mounts = new Map<string, { version: 1 | 2; secrets: Map<string, Record<string, unknown>> }>();
  readonly tokens = new Map<string, TokenEntry>();
  /** AppRole auth mounts: mount → role_id → { secretId, read }. */
  readonly approles = new Map<string, Map<string, { secretId: string; read: readonly string[] | '*' }>>();
  namespace: string | undefined;
  sealed = false;

  constructor(options: ListenOptions = {}) {
    this.server = new ProtocolServer((req, _body, res) => this.#handle(req, _body, res), options);
  }

  /** Back to empty: no mounts, tokens, roles or namespace; unsealed; counters cleared. */
  reset(): void {
    this.mounts.clear();
    this.tokens.clear();
    this.approles.clear();
    this.namespace = undefined;
    this.sealed = false;
    this.server.resetCounts();
  }

  mount(name: string, version: 1 | 2): Map<string, Record<string, unknown>> {
    const secrets = new Map<string, Record<string, unknown>>();
    this.mounts.set(name, { version, secrets });
    return secrets;
  }

  addToken(token: string, read: readonly string[] | '*' = '*'): void {
    this.tokens.set(token, { read });
  }

  addAppRole(roleId: string, secretId: string, read: readonly string[] | '*' = '*', mount = 'approle'): void {
    if (!this.approles.has(mount)) this.approles.set(mount, new Map());
    this.approles.get(mount)!.set(roleId, { secretId, read });
  }

  /** Every token issued or added is gone, as after expiry: the next request with one is 403. */
  revokeAllTokens(): void {
    this.tokens.clear();
  }

  #handle(req: IncomingMessage, body: Buffer, res: ServerResponse): void {
    const url = new URL(req.url ?? '/', 'http://vault');
    const path = decodeURIComponent(url.pathname);
    const errors = (status: number, ...messages: string[]) => sendJson(res, status, { errors: messages });

    if (path === '/v1/sys/health') {
      this.server.count('health');
      return this.sealed
        ? sendJson(res, 503, { initialized: true, sealed: true, standby: true, version: '1.17.0' })
        : sendJson(res, 200, { initialized: true, sealed: false, standby: false, version: '1.17.0', cluster_name: 'fake' });
    }
    if (this.sealed) return errors(503, 'Vault is sealed');
    if (this.namespace !== undefined && req.headers['x-vault-namespace'] !== this.namespace) {
      // Outside the namespace neither the token nor the mounts exist.
      this.server.count('wrong-namespace');
      return errors(403, 'permission denied');
    }

    const login = /^\/v1\/auth\/(.+)\/login$/.exec(path);
    if (login && req.method === 'POST') {
      this.server.count('login');
      const roles = this.approles.get(login[1]!);
      if (!roles) return errors(404, `no handler for route "auth/${login[1]}/login". route entry not found.`);
      let creds: { role_id?: unknown; secret_id?: unknown };
      try {
        creds = JSON.parse(body.toString('utf8')) as typeof creds;
      } catch {
        return errors(400, 'failed to parse JSON input');
      }
      const role = typeof creds.role_id === 'string' ? roles.get(creds.role_id) : undefined;
      if (!role || creds.secret_id !== role.secretId) return errors(400, 'invalid role or secret ID');
      const token = opaqueToken('hvs.');
      this.tokens.set(token, { read: role.read });
      return sendJson(res, 200, { request_id: opaqueToken(''), lease_id: '', renewable: false, lease_duration: 0, data: null, wrap_info: null, warnings: null, auth: { client_token: token, accessor: opaqueToken(''), policies: ['default'], token_policies: ['default'], metadata: { role_name: 'drawbridge' }, lease_duration: 2764800, renewable: true, entity_id: '', token_type: 'service', orphan: true } });
    }

    const token = req.headers['x-vault-token'];
    const entry = typeof token === 'string' ? this.tokens.get(token) : undefined;
    if (!entry) {
      this.server.count('denied');
      return errors(403, 'permission denied');
    }
    const canRead = (p: string) => entry.read === '*' || entry.read.some((prefix) => p === prefix || p.startsWith(prefix.endsWith('/') ? prefix : `${prefix}/`));

    if (path === '/v1/auth/token/lookup-self') {
      this.server.count('lookup-self');
      return sendJson(res, 200, { data: { id: token, policies: ['default'], type: 'service', ttl: 3600 } });
    }
    const uiMount = /^\/v1\/sys\/internal\/ui\/mounts\/(.+?)\/?$/.exec(path);
    if (uiMount) {
      this.server.count('ui-mounts');
      const mount = this.mounts.get(uiMount[1]!);
      if (!mount) return errors(400, `no secret engine mount found at ${uiMount[1]}/`);
      if (!canRead(uiMount[1]!)) return errors(403, 'permission denied');
      return sendJson(res, 200, { data: { type: 'kv', path: `${uiMount[1]}/`, options: { version: String(mount.version) }, description: '' } });
    }
    if (req.method !== 'GET' || !path.startsWith('/v1/')) {
      this.server.unknown.push(`${req.method} ${path}`);
      return errors(405, 'unsupported operation');
    }
    for (const [name, mount] of this.mounts) {
      const prefix = mount.version === 2 ? `/v1/${name}/data/` : `/v1/${name}/`;
      if (!path.startsWith(prefix)) continue;
      const secretPath = path.slice(prefix.length);
      this.server.count(`read-v${mount.version}`);
      if (!canRead(`${name}/${secretPath}`)) return errors(403, '1 error occurred:\n\t* permission denied\n\n');
      const fields = mount.secrets.get(secretPath);
      if (!fields) return errors(404);
      const data = mount.version === 2 ? { data: fields, metadata: { created_time: new Date(0).toISOString(), custom_metadata: null, deletion_time: '', destroyed: false, version: 1 } } : fields;
      return sendJson(res, 200, { request_id: opaqueToken(''), lease_id: '', renewable: false, lease_duration: mount.version === 2 ? 0 : 2764800, data, wrap_info: null, warnings: null, auth: null });
    }
    this.server.unknown.push(`${req.method} ${path}`);
    return errors(404);
  }
}
