/**
 * API sessions: random 256-bit bearer tokens, stored only as SHA-256 hashes, short-lived (default 1 hour),
 * revoked on logout. A disabled or deleted user's sessions stop working at once.
 */
import { createHash, randomBytes } from 'node:crypto';
import type { Db } from '../db/database.js';
import { nowIso } from '../db/database.js';
import type { User } from './user-store.js';

export function hashToken(token: string): string {
  return createHash('sha256').update(token).digest('hex');
}

export function newToken(prefix: string): string {
  return `${prefix}_${randomBytes(32).toString('base64url')}`;
}

export interface Session {
  readonly tokenHash: string;
  readonly userName: string;
  readonly expiresAt: string;
}

export class SessionStore {
  constructor(private readonly db: Db, private readonly ttlSeconds: number) {}

  create(user: User): { token: string; expiresAt: string } {
    const token = newToken('dbs');
    const expiresAt = new Date(Date.now() + this.ttlSeconds * 1000).toISOString();
    this.db.prepare('INSERT INTO sessions (token_hash, user_name, created_at, expires_at) VALUES (?, ?, ?, ?)').run(hashToken(token), user.name, nowIso(), expiresAt);
    return { token, expiresAt };
  }

  resolve(token: string): Session | null {
    const row = this.db
      .prepare(
        `SELECT s.token_hash AS tokenHash, s.user_name AS userName, s.expires_at AS expiresAt FROM sessions s JOIN users u ON u.name = s.user_name
         WHERE s.token_hash = ? AND s.revoked_at IS NULL AND s.expires_at > ? AND u.disabled = 0`,
      )
      .get(hashToken(token), nowIso()) as Session | undefined;
    return row ?? null;
  }

  revoke(tokenHash: string): void {
    this.db.prepare('UPDATE sessions SET revoked_at = ? WHERE token_hash = ? AND revoked_at IS NULL').run(nowIso(), tokenHash);
  }

  revokeAllFor(userName: string): void {
    // User names are case-insensitive (users.name is NOCASE); this column is not.
    this.db.prepare('UPDATE sessions SET revoked_at = ? WHERE user_name = ? COLLATE NOCASE AND revoked_at IS NULL').run(nowIso(), userName);
  }
}
