/**
 * The secret stores the Console knows: name, kind and configuration.
 *
 * - The whole configuration is sealed with the master key (it holds credentials), bound to the store's name.
 * - Credentials are write-only: listings and reads show every other field and `"<set>"` for a credential. An
 *   update that leaves a credential out keeps the stored one, so an admin can change a mount or a region without
 *   retyping a secret — but not where credentials go (STORE_DESTINATION_FIELDS: an address, endpoint, token URL,
 *   authority or CA): an update that changes one of those and keeps a stored credential is refused (400 naming
 *   the field), or whoever can change a store could point it at their own server and collect its credentials.
 * - Names are unique (case-insensitive) and may not change; a store a secret rule uses cannot be deleted.
 * - `builtin` is the Console's own store (builtin-store.ts); its configuration is empty.
 */
import { z } from 'zod';
import { STORE_NAME } from '../../shared/secrets/secret-rules.js';
import type { MasterKey } from '../crypto/master-key.js';
import { nowIso, type Db } from '../db/database.js';
import { consoleErrors, FieldError } from '../errors.js';
import { STORE_CREDENTIAL_FIELDS, STORE_DESTINATION_FIELDS, STORE_KINDS, storeConfig, type StoreConfig } from './stores/store-config.js';

export type AnyStoreConfig = StoreConfig | { readonly kind: 'builtin' };
export type StoreKind = AnyStoreConfig['kind'];

export interface StoreInfo {
  readonly name: string;
  readonly kind: StoreKind;
  /** The configuration with every credential shown as "<set>". */
  readonly config: Record<string, unknown>;
  readonly createdAt: string;
  readonly updatedAt: string;
}

interface Row {
  name: string;
  kind: string;
  config_sealed: string;
  created_at: string;
  updated_at: string;
}

const SET = '<set>';
const context = (name: string): string => `secret_store:${name.toLowerCase()}`;

export const storeName = z.string().trim().regex(STORE_NAME, 'must be 1–63 letters, digits, . _ - (starting with a letter or digit)');

function credentialFields(kind: string): string[][] {
  return kind === 'builtin' ? [] : (STORE_CREDENTIAL_FIELDS[kind as StoreConfig['kind']] ?? []).map((f) => f.split('.'));
}

function getAt(obj: unknown, path: readonly string[]): unknown {
  return path.reduce<unknown>((o, k) => (typeof o === 'object' && o !== null ? (o as Record<string, unknown>)[k] : undefined), obj);
}

/** A copy of `obj` with `value` at `path` (objects on the way copied; missing ones created). */
function setAt(obj: Record<string, unknown>, path: readonly string[], value: unknown): Record<string, unknown> {
  const [head, ...rest] = path;
  const copy = { ...obj };
  if (rest.length === 0) copy[head!] = value;
  else copy[head!] = setAt(typeof copy[head!] === 'object' && copy[head!] !== null ? (copy[head!] as Record<string, unknown>) : {}, rest, value);
  return copy;
}

/** Credentials replaced by "<set>". */
function redact(config: Record<string, unknown>, kind: string): Record<string, unknown> {
  let out = config;
  for (const path of credentialFields(kind)) if (getAt(out, path) !== undefined) out = setAt(out, path, SET);
  return out;
}

/**
 * The new configuration with credentials the update left out (or sent back as "<set>") taken from the old one —
 * unless the update changes the block they belong to (another Vault auth method has other credentials).
 */
function keepCredentials(update: Record<string, unknown>, old: Record<string, unknown>, kind: string): { config: Record<string, unknown>; kept: string[] } {
  let out = update;
  const kept: string[] = [];
  for (const path of credentialFields(kind)) {
    const now = getAt(out, path);
    const before = getAt(old, path);
    const parent = path.slice(0, -1);
    const sameBlock = parent.length === 0 || (getAt(out, [...parent, 'method']) ?? getAt(old, [...parent, 'method'])) === getAt(old, [...parent, 'method']);
    if ((now === undefined || now === SET) && before !== undefined && sameBlock) {
      out = setAt(out, path, before);
      kept.push(path.join('.'));
    }
  }
  return { config: out, kept };
}

/** Refuses (400 naming the field) an update that keeps stored credentials (`kept`) and changes where they are sent. */
function refuseMovedCredentials(updated: AnyStoreConfig, old: Record<string, unknown>, kept: readonly string[]): void {
  if (updated.kind === 'builtin' || kept.length === 0) return;
  for (const field of STORE_DESTINATION_FIELDS[updated.kind]) {
    const path = field.split('.');
    if (JSON.stringify(getAt(updated, path)) !== JSON.stringify(getAt(old, path))) {
      throw new FieldError(`body.config.${field}`, `changes where the store's credentials are sent: give ${kept.join(', ')} again (stored credentials never go to a new ${field})`);
    }
  }
}

function parseConfig(kind: string, config: unknown): AnyStoreConfig {
  if (kind === 'builtin') {
    if (config !== undefined && (typeof config !== 'object' || config === null || Object.keys(config).length > 0)) throw new FieldError('body.config', "the built-in store takes no configuration (give {})");
    return { kind: 'builtin' };
  }
  const parsed = storeConfig.safeParse({ ...(typeof config === 'object' && config !== null ? config : {}), kind });
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    const field = issue.path.length ? `body.config.${issue.path.join('.')}` : 'body.config';
    if (issue.path[0] === 'kind') throw new FieldError('body.kind', `must be one of builtin, ${STORE_KINDS.join(', ')}`);
    throw new FieldError(field, issue.code === 'unrecognized_keys' ? `unknown field(s): ${issue.keys.join(', ')}` : issue.message);
  }
  return parsed.data;
}

export class SecretStoreRegistry {
  constructor(
    private readonly db: Db,
    private readonly masterKey: MasterKey,
  ) {}

  exists(name: string): boolean {
    return this.db.prepare('SELECT 1 FROM secret_stores WHERE name = ?').get(name) !== undefined;
  }

  list(): StoreInfo[] {
    return (this.db.prepare('SELECT * FROM secret_stores ORDER BY name').all() as Row[]).map((r) => this.info(r));
  }

  get(name: string): StoreInfo {
    return this.info(this.row(name));
  }

  /** The configuration with its credentials, for a provider. */
  config(name: string): AnyStoreConfig {
    const row = this.row(name);
    return JSON.parse(this.masterKey.open(row.config_sealed, context(row.name)).toString('utf8')) as AnyStoreConfig;
  }

  create(name: string, kind: string, config: unknown): StoreInfo {
    const parsed = parseConfig(kind, config);
    const now = nowIso();
    return this.db.transaction(() => {
      if (this.exists(name)) throw consoleErrors.conflict(`a secret store named '${name}' exists already`);
      this.db.prepare('INSERT INTO secret_stores (name, kind, config_sealed, created_at, updated_at) VALUES (?, ?, ?, ?, ?)').run(name, parsed.kind, this.masterKey.seal(JSON.stringify(parsed), context(name)), now, now);
      return this.get(name);
    })();
  }

  /**
   * Replaces the configuration; credentials left out (or "<set>") keep their stored values, unless it changes where
   * they are sent (400). The kind may not change.
   */
  update(name: string, config: unknown): StoreInfo {
    return this.db.transaction(() => {
      const row = this.row(name);
      const old = this.config(name) as unknown as Record<string, unknown>;
      const { config: merged, kept } = keepCredentials(typeof config === 'object' && config !== null ? (config as Record<string, unknown>) : {}, old, row.kind);
      delete merged.kind;
      const parsed = parseConfig(row.kind, row.kind === 'builtin' ? config : merged);
      refuseMovedCredentials(parsed, old, kept);
      this.db.prepare('UPDATE secret_stores SET config_sealed = ?, updated_at = ? WHERE name = ?').run(this.masterKey.seal(JSON.stringify(parsed), context(row.name)), nowIso(), row.name);
      return this.get(row.name);
    })();
  }

  /** Deletes a store no rule uses (`usedBy`: the rules that still do). */
  delete(name: string, usedBy: readonly string[]): void {
    const row = this.row(name);
    if (usedBy.length) throw consoleErrors.conflict(`the secret store '${row.name}' is used by secret rule(s) ${usedBy.map((r) => `'${r}'`).join(', ')}; change or delete them first`);
    this.db.prepare('DELETE FROM secret_stores WHERE name = ?').run(row.name);
  }

  private row(name: string): Row {
    const row = this.db.prepare('SELECT * FROM secret_stores WHERE name = ?').get(name) as Row | undefined;
    if (!row) throw consoleErrors.not_found(`no secret store named '${name}'`);
    return row;
  }

  private info(r: Row): StoreInfo {
    const config = JSON.parse(this.masterKey.open(r.config_sealed, context(r.name)).toString('utf8')) as Record<string, unknown>;
    const { kind: _, ...rest } = config;
    return { name: r.name, kind: r.kind as StoreKind, config: redact(rest, r.kind), createdAt: r.created_at, updatedAt: r.updated_at };
  }
}
