/**
 * Join tokens: what an admin hands to a new Defender so it may enrol (`drawbridge defender --join-token T`).
 *
 * - The token is shown once, at creation; only its SHA-256 hash is stored. Listings show ids, never tokens.
 * - Every token expires (1 s .. 30 days, default 1 hour); a single-use token (the default) admits one enrolment.
 * - Unknown → 401; expired or used up → 410 saying which, so the operator knows to ask for a new one.
 * - Consumption is one conditional UPDATE, so two Defenders racing with the same single-use token cannot both
 *   get in; an enrolment that fails after consuming gives the use back.
 */
import { randomBytes } from 'node:crypto';
import { z } from 'zod';
import { hashToken, newToken } from '../auth/session-store.js';
import type { Db } from '../db/database.js';
import { nowIso } from '../db/database.js';
import { hostName as hostNameSchema } from '../../shared/wire/defender-console.js';
import { consoleErrors, FieldError } from '../errors.js';

export const MAX_JOIN_TOKEN_TTL = 30 * 24 * 3600;

export const createJoinTokenBody = z.strictObject({
  // 1 s is allowed (not only 60) so expiry can be exercised end to end; a token that short is useless, not unsafe.
  ttlSeconds: z.number().int().min(1).max(MAX_JOIN_TOKEN_TTL).default(3600).describe('lifetime in seconds (default 3600, at most 30 days)'),
  singleUse: z.boolean().default(true).describe('admit only one enrolment (default true)'),
  hostName: hostNameSchema
    .optional()
    .describe('the only host name this token enrols (any letter case); needed to enrol again a name that is enrolled. Without it, the token enrols only names no Defender has'),
});

export interface JoinTokenView {
  readonly id: string;
  readonly createdBy: string;
  readonly createdAt: string;
  readonly expiresAt: string;
  readonly singleUse: boolean;
  /** The host name the token is for; null: any name no Defender has yet. */
  readonly hostName: string | null;
  readonly uses: number;
  readonly status: 'active' | 'expired' | 'used';
}

interface JoinTokenRow {
  token_hash: string;
  id: string;
  created_by: string;
  created_at: string;
  expires_at: string;
  single_use: number;
  host_name: string | null;
  uses: number;
}

function toView(r: JoinTokenRow, now: string): JoinTokenView {
  const used = r.single_use === 1 && r.uses > 0;
  return {
    id: r.id,
    createdBy: r.created_by,
    createdAt: r.created_at,
    expiresAt: r.expires_at,
    singleUse: r.single_use === 1,
    hostName: r.host_name,
    uses: r.uses,
    status: used ? 'used' : r.expires_at <= now ? 'expired' : 'active',
  };
}

export class JoinTokenStore {
  constructor(private readonly db: Db) {}

  create(createdBy: string, ttlSeconds: number, singleUse: boolean, hostName: string | null = null): { id: string; token: string; expiresAt: string; singleUse: boolean; hostName: string | null } {
    const token = newToken('dbj');
    const id = `jt_${randomBytes(9).toString('base64url')}`;
    const expiresAt = new Date(Date.now() + ttlSeconds * 1000).toISOString();
    this.db
      .prepare('INSERT INTO join_tokens (token_hash, id, created_by, created_at, expires_at, single_use, host_name) VALUES (?, ?, ?, ?, ?, ?, ?)')
      .run(hashToken(token), id, createdBy, nowIso(), expiresAt, singleUse ? 1 : 0, hostName);
    return { id, token, expiresAt, singleUse, hostName };
  }

  /** Newest first; `after` is the key of the last item of the previous page. */
  list(limit: number, after: string | null): JoinTokenView[] {
    const args = after === null ? [] : after.split(' ');
    if (args.length !== 0 && args.length !== 2) throw new FieldError('query.cursor', 'is not a cursor this list gave out');
    const where = after === null ? '' : 'WHERE (created_at, id) < (?, ?)';
    const rows = this.db.prepare(`SELECT * FROM join_tokens ${where} ORDER BY created_at DESC, id DESC LIMIT ?`).all(...args, limit) as JoinTokenRow[];
    const now = nowIso();
    return rows.map((r) => toView(r, now));
  }

  delete(id: string): boolean {
    return this.db.prepare('DELETE FROM join_tokens WHERE id = ?').run(id).changes > 0;
  }

  /**
   * Throws 401 (unknown) or 410 (expired, used) unless `token` may enrol now, and 403 when it is for another host
   * name than `hostName`; does not consume it. The token's view (its host name: whether it may take over an enrolled name).
   */
  check(token: string, hostName?: string): JoinTokenView {
    const row = this.db.prepare('SELECT * FROM join_tokens WHERE token_hash = ?').get(hashToken(token)) as JoinTokenRow | undefined;
    if (!row) throw consoleErrors.unauthenticated('unknown join token: ask an admin for one (POST /api/v1/defenders/join-tokens)');
    const view = toView(row, nowIso());
    if (view.status === 'used') throw consoleErrors.gone('this join token was already used (it is single-use): ask an admin for a new one');
    if (view.status === 'expired') throw consoleErrors.gone(`this join token expired at ${row.expires_at}: ask an admin for a new one`);
    if (hostName !== undefined && view.hostName !== null && view.hostName.toLowerCase() !== hostName.toLowerCase()) {
      throw consoleErrors.forbidden(`this join token is for the host '${view.hostName}', not '${hostName}': enrol that host with it, or ask an admin for a token for '${hostName}'`);
    }
    return view;
  }

  /** Checks and takes one use, atomically; returns a function that gives the use back. */
  consume(token: string): () => void {
    this.check(token);
    const hash = hashToken(token);
    const taken = this.db
      .prepare('UPDATE join_tokens SET uses = uses + 1 WHERE token_hash = ? AND expires_at > ? AND (single_use = 0 OR uses = 0)')
      .run(hash, nowIso()).changes;
    // Lost a race with another enrolment (or expired in between): answer as if we had come second.
    if (taken === 0) this.check(token);
    if (taken === 0) throw consoleErrors.gone('this join token was already used: ask an admin for a new one');
    return () => void this.db.prepare('UPDATE join_tokens SET uses = uses - 1 WHERE token_hash = ? AND uses > 0').run(hash);
  }
}
