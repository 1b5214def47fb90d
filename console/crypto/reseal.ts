/**
 * Master key rotation: every sealed value in the database, sealed again with the current master key.
 *
 * - This table lists every sealed column with the context its owner binds as AAD; a module that adds a sealed
 *   column adds its row here (test/e2e/console-secrets.test.ts rotates the key and fails on any value left sealed
 *   with the old one).
 * - One transaction: either everything is sealed with the new key, or nothing changed (the previous key stays
 *   needed). Values already under the current key are left alone, so a restart does nothing.
 */
import type { Db } from '../db/database.js';
import type { MasterKey } from './master-key.js';

interface SealedColumn {
  readonly table: string;
  readonly column: string;
  /** The row's primary key columns (rowid-safe update). */
  readonly keys: readonly string[];
  /** The AAD its owner binds, from the row. */
  readonly context: (row: Record<string, unknown>) => string;
}

export const SEALED_COLUMNS: readonly SealedColumn[] = [
  // tls.key and the OAuth signing keys: the meta key is the context (index.ts, oauth/oauth-keys.ts)
  { table: 'meta', column: 'value', keys: ['key'], context: (r) => String(r.key) },
  { table: 'ca', column: 'key_sealed', keys: ['id'], context: () => 'ca.key' },
  { table: 'oauth_models', column: 'id_sealed', keys: ['key'], context: () => 'oauth.model-id' },
  { table: 'secret_stores', column: 'config_sealed', keys: ['name'], context: (r) => `secret_store:${String(r.name).toLowerCase()}` },
  { table: 'builtin_secrets', column: 'value_sealed', keys: ['store', 'path'], context: (r) => `builtin_secret:${JSON.stringify([String(r.store).toLowerCase(), r.path])}` },
  { table: 'secret_values', column: 'value_sealed', keys: ['ref_key'], context: (r) => `secret_value:${String(r.ref_key)}` },
];

const SEALED = /^v1\.[0-9a-f]{8}\./;

/** Seals again, with the current key, every value sealed with a previous one. Returns how many. */
export function resealAll(db: Db, key: MasterKey): number {
  return db.transaction(() => {
    let n = 0;
    for (const c of SEALED_COLUMNS) {
      const rows = db.prepare(`SELECT ${[...c.keys, c.column].join(', ')} FROM ${c.table} WHERE ${c.column} IS NOT NULL`).all() as Record<string, unknown>[];
      const update = db.prepare(`UPDATE ${c.table} SET ${c.column} = ? WHERE ${c.keys.map((k) => `${k} = ?`).join(' AND ')}`);
      for (const row of rows) {
        const sealed = row[c.column];
        if (typeof sealed !== 'string' || !SEALED.test(sealed) || !key.isStale(sealed)) continue;
        const context = c.context(row);
        update.run(key.seal(key.open(sealed, context), context), ...c.keys.map((k) => row[k]));
        n++;
      }
    }
    return n;
  })();
}
