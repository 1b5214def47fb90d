/**
 * The built-in store: secret values kept by the Console itself (kind `builtin`), for teams without a vault or
 * for values that live nowhere else.
 *
 * - Values are written through the API (admin only) and sealed with the master key, bound to (store, path): they
 *   are never returned by the API, only their paths and update times.
 * - It serves them through the same provider interface as the enterprise stores, so rules, sync, status and
 *   injection treat it like any other store. A value that is a JSON object has keys, as Vault entries do.
 */
import type { Db } from '../db/database.js';
import type { MasterKey } from '../crypto/master-key.js';
import { nowIso } from '../db/database.js';
import { selectFromText } from './stores/select-key.js';
import { StoreError, type SecretProvider } from './stores/secret-provider.js';

const BUILTIN = 'builtin';
const MAX_VALUE_BYTES = 64 * 1024;
const context = (store: string, path: string): string => `builtin_secret:${JSON.stringify([store.toLowerCase(), path])}`;

export class BuiltinSecrets {
  constructor(
    private readonly db: Db,
    private readonly masterKey: MasterKey,
  ) {}

  put(store: string, path: string, value: string): void {
    if (Buffer.byteLength(value) > MAX_VALUE_BYTES) throw new StoreError('config', BUILTIN, `the value is over ${MAX_VALUE_BYTES} bytes`);
    this.db
      .prepare('INSERT INTO builtin_secrets (store, path, value_sealed, updated_at) VALUES (?, ?, ?, ?) ON CONFLICT(store, path) DO UPDATE SET value_sealed = excluded.value_sealed, updated_at = excluded.updated_at')
      .run(store, path, this.masterKey.seal(value, context(store, path)), nowIso());
  }

  /** False when there was no such value. */
  delete(store: string, path: string): boolean {
    return this.db.prepare('DELETE FROM builtin_secrets WHERE store = ? AND path = ?').run(store, path).changes > 0;
  }

  paths(store: string): { path: string; updatedAt: string }[] {
    return (this.db.prepare('SELECT path, updated_at FROM builtin_secrets WHERE store = ? ORDER BY path').all(store) as { path: string; updated_at: string }[]).map((r) => ({ path: r.path, updatedAt: r.updated_at }));
  }

  provider(store: string): SecretProvider {
    return {
      kind: BUILTIN,
      fetch: async ({ path, key }) => {
        const row = this.db.prepare('SELECT value_sealed FROM builtin_secrets WHERE store = ? AND path = ?').get(store, path) as { value_sealed: string } | undefined;
        if (!row) throw new StoreError('not_found', BUILTIN, `the built-in store '${store}' has no secret '${path}' (set it with PUT /api/v1/secret-stores/${store}/values)`);
        const value = this.masterKey.open(row.value_sealed, context(store, path)).toString('utf8');
        return selectFromText(BUILTIN, path, value, key);
      },
      testConnection: async () => undefined,
      close: () => undefined,
    };
  }
}
