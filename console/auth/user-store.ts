/**
 * Local users, their role and groups.
 *
 * - Names are case-insensitive, 1–64 printable characters without `/`, and unique.
 * - Passwords: at least 12 characters, hashed with scrypt (crypto/password.ts); hashes never leave this module.
 * - The last enabled admin cannot be deleted, disabled or demoted (the Console must stay administrable).
 */
import { z } from 'zod';
import type { Db } from '../db/database.js';
import { nowIso } from '../db/database.js';
import { consoleErrors } from '../errors.js';
import { DUMMY_HASH, hashPassword, verifyPassword } from '../crypto/password.js';
import { ROLES, type Role } from '../api/route.js';
import { foldName } from '../../shared/policy/match-pattern.js';

// A name access rules can name exactly: no leading `-` (an exclusion there), no `*` (a wildcard), no `,` or ` -x`
// (a list written without brackets, which rules refuse).
const namedByRules = (n: string): boolean => !n.startsWith('-') && !/[*,]|\s-\S/.test(n);
const NAMED_BY_RULES = "must not start with '-' or hold '*', ',' or ' -' (access rules read those as exclusions, wildcards and lists)";
export const userName = z.string().trim().min(1).max(64).regex(/^[^\u0000-\u001f\u007f/]+$/, 'must be printable and contain no /').refine(namedByRules, NAMED_BY_RULES);
export const password = z.string().min(12, 'must be at least 12 characters').max(1024);
export const groupList = z.array(z.string().trim().min(1).max(256).regex(/^[^\u0000-\u001f\u007f]+$/, 'must be printable').refine(namedByRules, NAMED_BY_RULES)).max(256);
export const role = z.enum(ROLES as [Role, ...Role[]]);

export interface User {
  readonly name: string;
  readonly role: Role;
  readonly groups: readonly string[];
  readonly source: string;
  readonly createdAt: string;
  readonly disabled: boolean;
}

interface UserRow {
  name: string;
  password_hash: string | null;
  role: Role;
  groups_json: string;
  source: string;
  created_at: string;
  disabled: number;
}

function toUser(r: UserRow): User {
  return { name: r.name, role: r.role, groups: JSON.parse(r.groups_json) as string[], source: r.source, createdAt: r.created_at, disabled: r.disabled === 1 };
}

export class UserStore {
  constructor(private readonly db: Db) {}

  count(): number {
    return (this.db.prepare('SELECT COUNT(*) AS n FROM users').get() as { n: number }).n;
  }

  get(name: string): User | null {
    const row = this.db.prepare('SELECT * FROM users WHERE name = ?').get(name) as UserRow | undefined;
    return row ? toUser(row) : null;
  }

  list(limit: number, after: string | null): User[] {
    const rows = this.db.prepare('SELECT * FROM users WHERE name > ? COLLATE NOCASE ORDER BY name COLLATE NOCASE LIMIT ?').all(after ?? '', limit) as UserRow[];
    return rows.map(toUser);
  }

  async create(input: { name: string; password: string | null; role: Role; groups: readonly string[] }): Promise<User> {
    // SQLite's NOCASE folds ASCII letters only; access rules and name checks fold every letter (É is é, µ is μ): foldName.
    const folded = foldName(input.name);
    const taken = (this.db.prepare('SELECT name FROM users').all() as { name: string }[]).find((r) => foldName(r.name) === folded);
    if (taken) throw consoleErrors.conflict(`a user named '${taken.name}' already exists (user names are the same in any letter case)`);
    const hash = input.password === null ? null : await hashPassword(input.password);
    this.db
      .prepare('INSERT INTO users (name, password_hash, role, groups_json, created_at) VALUES (?, ?, ?, ?, ?)')
      .run(input.name, hash, input.role, JSON.stringify([...new Set(input.groups)]), nowIso());
    return this.get(input.name)!;
  }

  async update(name: string, patch: { password?: string | undefined; role?: Role | undefined; groups?: readonly string[] | undefined; disabled?: boolean | undefined }): Promise<User> {
    const user = this.get(name);
    if (!user) throw consoleErrors.not_found(`no user named '${name}'`);
    const demotes = user.role === 'admin' && !user.disabled && ((patch.role !== undefined && patch.role !== 'admin') || patch.disabled === true);
    if (demotes) this.assertAnotherAdmin(user.name);
    const hash = patch.password !== undefined ? await hashPassword(patch.password) : undefined;
    this.db.transaction(() => {
      if (hash !== undefined) this.db.prepare('UPDATE users SET password_hash = ? WHERE name = ?').run(hash, name);
      if (patch.role !== undefined) this.db.prepare('UPDATE users SET role = ? WHERE name = ?').run(patch.role, name);
      if (patch.groups !== undefined) this.db.prepare('UPDATE users SET groups_json = ? WHERE name = ?').run(JSON.stringify([...new Set(patch.groups)]), name);
      if (patch.disabled !== undefined) this.db.prepare('UPDATE users SET disabled = ? WHERE name = ?').run(patch.disabled ? 1 : 0, name);
    })();
    return this.get(name)!;
  }

  delete(name: string): void {
    const user = this.get(name);
    if (!user) throw consoleErrors.not_found(`no user named '${name}'`);
    if (user.role === 'admin' && !user.disabled) this.assertAnotherAdmin(user.name);
    this.db.prepare('DELETE FROM users WHERE name = ?').run(name);
  }

  /** The user when the password is right and the account enabled; null otherwise (same timing either way). */
  async verify(name: string, pw: string): Promise<User | null> {
    const row = this.db.prepare('SELECT * FROM users WHERE name = ?').get(name) as UserRow | undefined;
    const ok = await verifyPassword(pw, row?.password_hash ?? DUMMY_HASH);
    return ok && row && row.password_hash && row.disabled === 0 ? toUser(row) : null;
  }

  private assertAnotherAdmin(name: string): void {
    const others = (this.db.prepare("SELECT COUNT(*) AS n FROM users WHERE role = 'admin' AND disabled = 0 AND name <> ?").get(name) as { n: number }).n;
    if (others === 0) throw consoleErrors.conflict(`'${name}' is the last enabled admin; make another admin first`);
  }
}
