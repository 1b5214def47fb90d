/**
 * One-time tokens of the certificate install command (`printf … | curl -K - … install.sh | sh`, install-script.ts).
 *
 * - Random 256-bit, stored only as a SHA-256 hash, bound to the user and to the login session that asked for it.
 * - Usable until the earlier of `--install-token-ttl` (default 10 minutes) and that session's end: a logout, an
 *   expired session or an admin changing the user (which ends their sessions) kills the token too.
 * - Reading the state (the install script's GET) never uses the token up; `consume` does, exactly once: the
 *   conditional UPDATE is the single point of truth, so two concurrent uses cannot both win.
 * - Unknown → 401; used or expired (or its session ended) → 410 saying which.
 */
import type { DrawbridgeError } from '../../shared/errors/drawbridge-error.js';
import { hashToken, newToken } from '../auth/session-store.js';
import type { Db } from '../db/database.js';
import { nowIso } from '../db/database.js';
import { consoleErrors } from '../errors.js';

/** A token's owner and the session bounding what it may obtain. */
export interface InstallGrant {
  readonly userName: string;
  readonly sessionHash: string;
  readonly sessionExpiresAt: string;
}

export type InstallTokenState = { readonly ok: true; readonly grant: InstallGrant } | { readonly ok: false; readonly error: DrawbridgeError };

const TOKEN_SHAPE = /^dbi_[A-Za-z0-9_-]{43}$/;
/** Tokens this long expired are forgotten (a later use is then "unknown" rather than "expired"). */
const FORGET_AFTER_MS = 7 * 24 * 3600_000;

export function createInstallToken(db: Db, grant: InstallGrant, ttlSeconds: number): { token: string; expiresAt: string } {
  const token = newToken('dbi');
  const ttlEnd = Date.now() + ttlSeconds * 1000;
  const expiresAt = new Date(Math.min(ttlEnd, Date.parse(grant.sessionExpiresAt))).toISOString();
  db.transaction(() => {
    db.prepare('DELETE FROM install_tokens WHERE expires_at < ?').run(new Date(Date.now() - FORGET_AFTER_MS).toISOString());
    db.prepare('INSERT INTO install_tokens (token_hash, user_name, expires_at, session_hash) VALUES (?, ?, ?, ?)').run(hashToken(token), grant.userName, expiresAt, grant.sessionHash);
  })();
  return { token, expiresAt };
}

/** What using `token` now would give, without using it. */
export function installTokenState(db: Db, token: string): InstallTokenState {
  const fail = (error: DrawbridgeError): InstallTokenState => ({ ok: false, error });
  if (!TOKEN_SHAPE.test(token)) return fail(consoleErrors.unauthenticated('unknown install token; get a new install command from the Console'));
  const row = db.prepare('SELECT user_name, expires_at, used_at, session_hash FROM install_tokens WHERE token_hash = ?').get(hashToken(token)) as
    | { user_name: string; expires_at: string; used_at: string | null; session_hash: string | null }
    | undefined;
  if (!row) return fail(consoleErrors.unauthenticated('unknown install token; get a new install command from the Console'));
  if (row.used_at !== null) return fail(consoleErrors.gone('this install command was already used; get a new one from the Console'));
  const now = nowIso();
  if (row.expires_at <= now) return fail(consoleErrors.gone('this install command expired; get a new one from the Console'));
  const session = row.session_hash
    ? (db
        .prepare('SELECT s.expires_at AS expiresAt FROM sessions s JOIN users u ON u.name = s.user_name WHERE s.token_hash = ? AND s.revoked_at IS NULL AND s.expires_at > ? AND u.disabled = 0')
        .get(row.session_hash, now) as { expiresAt: string } | undefined)
    : undefined;
  if (!session) return fail(consoleErrors.gone('the login session that created this install command has ended; log in and get a new one'));
  return { ok: true, grant: { userName: row.user_name, sessionHash: row.session_hash!, sessionExpiresAt: session.expiresAt } };
}

/** Uses the token up; throws the state's error when it cannot be used (including losing a race to another use). */
export function consumeInstallToken(db: Db, token: string): InstallGrant {
  return db.transaction(() => {
    const state = installTokenState(db, token);
    if (!state.ok) throw state.error;
    const used = db.prepare('UPDATE install_tokens SET used_at = ? WHERE token_hash = ? AND used_at IS NULL').run(nowIso(), hashToken(token)).changes;
    if (used !== 1) throw consoleErrors.gone('this install command was already used; get a new one from the Console');
    return state.grant;
  })();
}
