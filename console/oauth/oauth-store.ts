/**
 * oidc-provider's persistence (its `adapter`) on the Console's SQLite database: table `oauth_models`
 * (migration 4). One adapter instance per model name; all share the table.
 *
 * - Rows are keyed by SHA-256 of `model:id`. For tokens and codes the id *is* the secret value, so it is never
 *   stored: `find(id)` hashes again and puts the id back into the payload (`jti`).
 * - The two lookups that must return an id they were not given (a device code by its user code, a session by its
 *   uid) read it from `id_sealed`, sealed with the master key; user codes are stored hashed too.
 * - An expired row is never returned (oidc-provider re-checks `exp` for tokens, but not for every model) and
 *   is deleted by a sweep at most once a minute.
 * - `revokeByGrantId` deletes the adapter's model's rows of a grant (oidc-provider calls it for every token and
 *   code model): that is how revoking a refresh token ends the access tokens of the same login too.
 */
import { createHash } from 'node:crypto';
import type { Adapter, AdapterPayload } from 'oidc-provider';
import type { MasterKey } from '../crypto/master-key.js';
import type { Db } from '../db/database.js';

/** Models whose id must be recoverable from a secondary lookup. */
const SEALED_ID_MODELS = new Set(['DeviceCode', 'Session']);
const SEAL_CONTEXT = 'oauth.model-id';
const SWEEP_EVERY_MS = 60_000;

interface Row {
  payload_json: string;
  id_sealed: string | null;
}

const sha256 = (s: string): string => createHash('sha256').update(s).digest('hex');
const epoch = (): number => Math.floor(Date.now() / 1000);

export function userCodeHash(userCode: string): string {
  return sha256(`user-code:${userCode}`);
}

/** The shared store; `adapterFor(model)` is what oidc-provider's `adapter` option calls. */
export class OAuthStore {
  private lastSweep = 0;

  constructor(
    private readonly db: Db,
    private readonly masterKey: MasterKey,
  ) {}

  adapterFor(model: string): Adapter {
    const key = (id: string): string => sha256(`${model}:${id}`);
    const load = (row: Row | undefined, id: string | null): AdapterPayload | undefined => {
      if (!row) return undefined;
      const payload = JSON.parse(row.payload_json) as AdapterPayload;
      const jti = id ?? (row.id_sealed ? this.masterKey.open(row.id_sealed, SEAL_CONTEXT).toString('utf8') : undefined);
      return jti === undefined ? payload : { ...payload, jti };
    };
    const live = 'AND (expires_at IS NULL OR expires_at > ?)';
    return {
      upsert: async (id, payload, expiresIn) => {
        this.sweep();
        const { jti, ...rest } = payload;
        // A payload whose jti is not its id (none in oidc-provider 9) would lose it here: keep it then.
        const stored = jti !== undefined && jti !== id ? payload : rest;
        this.db
          .prepare(
            `INSERT INTO oauth_models (key, model, payload_json, id_sealed, grant_id, account_id, user_code_hash, uid, expires_at)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
             ON CONFLICT(key) DO UPDATE SET payload_json = excluded.payload_json, id_sealed = excluded.id_sealed, grant_id = excluded.grant_id,
               account_id = excluded.account_id, user_code_hash = excluded.user_code_hash, uid = excluded.uid, expires_at = excluded.expires_at`,
          )
          .run(
            key(id),
            model,
            JSON.stringify(stored),
            SEALED_ID_MODELS.has(model) ? this.masterKey.seal(id, SEAL_CONTEXT) : null,
            typeof payload.grantId === 'string' ? payload.grantId : null,
            typeof payload.accountId === 'string' ? payload.accountId : null,
            typeof payload.userCode === 'string' ? userCodeHash(payload.userCode) : null,
            typeof payload.uid === 'string' ? payload.uid : null,
            typeof expiresIn === 'number' ? epoch() + expiresIn : null,
          );
      },
      find: async (id) => load(this.db.prepare(`SELECT payload_json, id_sealed FROM oauth_models WHERE key = ? ${live}`).get(key(id), epoch()) as Row | undefined, id),
      findByUserCode: async (userCode) =>
        load(this.db.prepare(`SELECT payload_json, id_sealed FROM oauth_models WHERE user_code_hash = ? AND model = ? ${live}`).get(userCodeHash(userCode), model, epoch()) as Row | undefined, null),
      findByUid: async (uid) =>
        load(this.db.prepare(`SELECT payload_json, id_sealed FROM oauth_models WHERE model = ? AND uid = ? ${live}`).get(model, uid, epoch()) as Row | undefined, null),
      consume: async (id) => {
        this.db.transaction(() => {
          const row = this.db.prepare('SELECT payload_json FROM oauth_models WHERE key = ?').get(key(id)) as { payload_json: string } | undefined;
          if (!row) return;
          const payload = { ...(JSON.parse(row.payload_json) as AdapterPayload), consumed: epoch() };
          this.db.prepare('UPDATE oauth_models SET payload_json = ? WHERE key = ?').run(JSON.stringify(payload), key(id));
        })();
      },
      destroy: async (id) => {
        this.db.prepare('DELETE FROM oauth_models WHERE key = ?').run(key(id));
      },
      revokeByGrantId: async (grantId) => {
        this.db.prepare('DELETE FROM oauth_models WHERE grant_id = ? AND model = ?').run(grantId, model);
      },
    };
  }

  /** Ends every OAuth login of a user: their grants and everything issued under them. Returns how many grants. */
  revokeUserGrants(userName: string): number {
    return this.db.transaction(() => {
      const grants = this.db.prepare("SELECT key FROM oauth_models WHERE model = 'Grant' AND account_id = ? COLLATE NOCASE").all(userName) as { key: string }[];
      this.db.prepare('DELETE FROM oauth_models WHERE account_id = ? COLLATE NOCASE').run(userName);
      return grants.length;
    })();
  }

  private sweep(): void {
    const now = Date.now();
    if (now - this.lastSweep < SWEEP_EVERY_MS) return;
    this.lastSweep = now;
    this.db.prepare('DELETE FROM oauth_models WHERE expires_at IS NOT NULL AND expires_at <= ?').run(epoch());
  }
}
