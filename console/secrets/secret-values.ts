/**
 * The last good value of every secret a rule names, sealed with the master key, with the outcome of the latest
 * fetch.
 *
 * - A value is sealed with its (store, path, key) as context: a sealed value cannot be moved to another secret.
 * - A failed fetch records the error and keeps the last good value: a store that is down never drops a secret.
 * - Errors are the provider's messages (they never carry a value); nothing here logs.
 * - Values no rule names any more are pruned, so a secret leaves the Console with the last rule that used it.
 */
import { secretRefKey, type SecretRef } from '../../shared/secrets/secret-rules.js';
import type { MasterKey } from '../crypto/master-key.js';
import { nowIso, type Db } from '../db/database.js';

export type ValueRef = Pick<SecretRef, 'store' | 'path' | 'key'>;

export interface SecretValueStatus {
  readonly store: string;
  readonly path: string;
  readonly key: string | null;
  /** Whether a value is held (the last good one, even when the latest fetch failed). */
  readonly hasValue: boolean;
  /** When the value held was fetched. */
  readonly fetchedAt: string | null;
  /** When the latest fetch ran (successful or not). */
  readonly checkedAt: string | null;
  readonly error: { readonly code: string; readonly message: string } | null;
}

interface Row {
  ref_key: string;
  store: string;
  path: string;
  key: string | null;
  value_sealed: string | null;
  fetched_at: string | null;
  checked_at: string | null;
  error_code: string | null;
  error: string | null;
}

const context = (refKey: string): string => `secret_value:${refKey}`;

export class SecretValues {
  constructor(
    private readonly db: Db,
    private readonly masterKey: MasterKey,
  ) {}

  /** The values held for these refs (refs without a value are absent), by secretRefKey. */
  read(refs: readonly ValueRef[]): Map<string, string> {
    const get = this.db.prepare('SELECT ref_key, value_sealed FROM secret_values WHERE ref_key = ?');
    const out = new Map<string, string>();
    for (const ref of refs) {
      const k = secretRefKey(ref);
      if (out.has(k)) continue;
      const row = get.get(k) as Pick<Row, 'ref_key' | 'value_sealed'> | undefined;
      if (row?.value_sealed) out.set(k, this.masterKey.open(row.value_sealed, context(k)).toString('utf8'));
    }
    return out;
  }

  /** Records a fetched value; true when it differs from the value held before. */
  recordValue(ref: ValueRef, value: string): boolean {
    const k = secretRefKey(ref);
    const now = nowIso();
    const old = this.read([ref]).get(k);
    const changed = old !== value;
    this.db
      .prepare(
        `INSERT INTO secret_values (ref_key, store, path, key, value_sealed, fetched_at, checked_at, error_code, error) VALUES (?, ?, ?, ?, ?, ?, ?, NULL, NULL)
         ON CONFLICT(ref_key) DO UPDATE SET value_sealed = CASE WHEN ? THEN excluded.value_sealed ELSE value_sealed END,
           fetched_at = excluded.fetched_at, checked_at = excluded.checked_at, error_code = NULL, error = NULL`,
      )
      .run(k, ref.store, ref.path, ref.key ?? null, this.masterKey.seal(value, context(k)), now, now, changed ? 1 : 0);
    return changed;
  }

  /** Records a failed fetch; the last good value stays. */
  recordError(ref: ValueRef, code: string, message: string): void {
    const now = nowIso();
    this.db
      .prepare(
        `INSERT INTO secret_values (ref_key, store, path, key, value_sealed, fetched_at, checked_at, error_code, error) VALUES (?, ?, ?, ?, NULL, NULL, ?, ?, ?)
         ON CONFLICT(ref_key) DO UPDATE SET checked_at = excluded.checked_at, error_code = excluded.error_code, error = excluded.error`,
      )
      .run(secretRefKey(ref), ref.store, ref.path, ref.key ?? null, now, code, message);
  }

  /** Records a sync's outcome in one transaction; returns how many values changed. */
  record(fetched: readonly { ref: ValueRef; value: string }[], failed: readonly { store: string; path: string; key: string | null; code: string; message: string }[]): number {
    return this.db.transaction(() => {
      let changed = 0;
      for (const f of fetched) if (this.recordValue(f.ref, f.value)) changed++;
      for (const f of failed) this.recordError({ store: f.store, path: f.path, ...(f.key !== null ? { key: f.key } : {}) }, f.code, f.message);
      return changed;
    })();
  }

  /** Drops values no ref in `keep` names; true when something was dropped. */
  prune(keep: readonly ValueRef[]): boolean {
    const wanted = new Set(keep.map(secretRefKey));
    const rows = this.db.prepare('SELECT ref_key FROM secret_values').all() as Pick<Row, 'ref_key'>[];
    const drop = rows.filter((r) => !wanted.has(r.ref_key));
    const del = this.db.prepare('DELETE FROM secret_values WHERE ref_key = ?');
    for (const r of drop) del.run(r.ref_key);
    return drop.length > 0;
  }

  /** The status of every secret held or tried (never a value). */
  status(): SecretValueStatus[] {
    const rows = this.db.prepare('SELECT * FROM secret_values ORDER BY store, path, key').all() as Row[];
    return rows.map((r) => ({
      store: r.store,
      path: r.path,
      key: r.key,
      hasValue: r.value_sealed !== null,
      fetchedAt: r.fetched_at,
      checkedAt: r.checked_at,
      error: r.error_code ? { code: r.error_code, message: r.error ?? '' } : null,
    }));
  }
}
