/**
 * The register of issued certificates, read and revoked (issuance itself registers in ca/console-ca.ts).
 *
 * - Serials are lowercase hex everywhere (the CA issues them so; callers' input is normalised).
 * - Revocation sets `revoked_at` and bumps the policy version in the same transaction, so the push hub never
 *   announces a version whose revocations are not committed; revoking twice changes nothing and bumps nothing.
 * - A user's certificates are matched by name case-insensitively, like user names.
 * - Revocation lists carry a revoked certificate until REVOKED_GRACE_MS after it expired, not just until then: a
 *   Defender whose clock is behind ours would otherwise take it as unexpired, and no longer revoked, for as long
 *   as its clock is behind (up to that grace; a clock further off is a broken host).
 */
import type { ConsoleContext } from '../context.js';
import type { Db } from '../db/database.js';
import { nowIso } from '../db/database.js';
import { FieldError } from '../errors.js';

/** What revoking needs: the register and the policy clock to bump. */
export type Revoker = Pick<ConsoleContext, 'db' | 'policy'>;

/** 'defender' is a Defender's client certificate, 'defender-server' its TLS server certificate (migration 3). */
export type CertificateKind = 'user' | 'defender' | 'defender-server' | 'console';
export type CertificateStatus = 'valid' | 'revoked' | 'expired';

export interface CertificateView {
  readonly serial: string;
  readonly kind: CertificateKind;
  /** The user name for user certificates; the first DNS name or IP for server certificates. */
  readonly subject: string;
  readonly groups: readonly string[];
  readonly notBefore: string;
  readonly notAfter: string;
  readonly createdAt: string;
  readonly revokedAt: string | null;
  readonly status: CertificateStatus;
}

interface CertificateRow {
  serial: string;
  kind: CertificateKind;
  subject_name: string;
  groups_json: string;
  not_before: string;
  not_after: string;
  created_at: string;
  revoked_at: string | null;
}

function toView(r: CertificateRow, now: string): CertificateView {
  return {
    serial: r.serial.toLowerCase(),
    kind: r.kind,
    subject: r.subject_name,
    groups: JSON.parse(r.groups_json) as string[],
    notBefore: r.not_before,
    notAfter: r.not_after,
    createdAt: r.created_at,
    revokedAt: r.revoked_at,
    status: r.revoked_at !== null ? 'revoked' : r.not_after <= now ? 'expired' : 'valid',
  };
}

/**
 * `AB:CD:01`, `abcd01`, or `1ab` (a serial typed without its leading zero) → whole lowercase bytes as the CA
 * writes them (`01ab`); anything else → 400 naming the field.
 */
export function normaliseSerial(input: string, field = 'serial'): string {
  const hex = input.replace(/:/g, '').toLowerCase();
  if (!/^[0-9a-f]{1,64}$/.test(hex)) throw new FieldError(field, 'must be a certificate serial number in hex');
  return hex.length % 2 === 1 ? `0${hex}` : hex;
}

export function getCertificate(db: Db, serial: string): CertificateView | null {
  const row = db.prepare('SELECT * FROM certificates WHERE serial = ?').get(serial) as CertificateRow | undefined;
  return row ? toView(row, nowIso()) : null;
}

export interface CertificateFilter {
  /** Only this user's certificates (kind 'user'). */
  readonly user?: string | undefined;
  readonly kind?: CertificateKind | undefined;
}

/** Newest first; `after` is the opaque key of the last item of the previous page. */
export function listCertificates(db: Db, filter: CertificateFilter, limit: number, after: string | null): CertificateView[] {
  const where: string[] = [];
  const args: unknown[] = [];
  if (filter.user !== undefined) {
    where.push("kind = 'user' AND subject_name = ? COLLATE NOCASE");
    args.push(filter.user);
  }
  if (filter.kind !== undefined) {
    where.push('kind = ?');
    args.push(filter.kind);
  }
  if (after !== null) {
    const [createdAt, serial] = after.split(' ');
    where.push('(created_at, serial) < (?, ?)');
    args.push(createdAt ?? '', serial ?? '');
  }
  const sql = `SELECT * FROM certificates ${where.length ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY created_at DESC, serial DESC LIMIT ?`;
  const now = nowIso();
  return (db.prepare(sql).all(...args, limit) as CertificateRow[]).map((r) => toView(r, now));
}

export const pageKey = (c: CertificateView): string => `${c.createdAt} ${c.serial}`;

/** Revokes one certificate; returns it (as it is now), or null when there is no such serial. */
export function revokeCertificate(ctx: Revoker, serial: string): CertificateView | null {
  return ctx.db.transaction(() => {
    const changed = ctx.db.prepare('UPDATE certificates SET revoked_at = ? WHERE serial = ? AND revoked_at IS NULL').run(nowIso(), serial).changes;
    if (changed > 0) ctx.policy.bump('revocation');
    return getCertificate(ctx.db, serial);
  })();
}

/** Revokes every unexpired, unrevoked user certificate of `userName`; returns their serials. */
export function revokeUserCertificates(ctx: Revoker, userName: string): string[] {
  return ctx.db.transaction(() => {
    const now = nowIso();
    const serials = (
      ctx.db
        .prepare("SELECT serial FROM certificates WHERE kind = 'user' AND subject_name = ? COLLATE NOCASE AND revoked_at IS NULL AND not_after > ? ORDER BY created_at")
        .all(userName, now) as { serial: string }[]
    ).map((r) => r.serial.toLowerCase());
    if (serials.length === 0) return serials;
    ctx.db.prepare("UPDATE certificates SET revoked_at = ? WHERE kind = 'user' AND subject_name = ? COLLATE NOCASE AND revoked_at IS NULL AND not_after > ?").run(now, userName, now);
    ctx.policy.bump('revocation');
    return serials;
  })();
}

/** Whether any certificate was ever issued to this user name (for a clear 404 on an unknown name). */
export function hasUserCertificates(db: Db, userName: string): boolean {
  return db.prepare("SELECT 1 FROM certificates WHERE kind = 'user' AND subject_name = ? COLLATE NOCASE LIMIT 1").get(userName) !== undefined;
}

/** How long a revoked certificate stays on revocation lists after it expired: the clock skew Defenders may have. */
export const REVOKED_GRACE_MS = 24 * 3600_000;

/** Serials (lowercase hex) of revoked certificates not expired for more than REVOKED_GRACE_MS: what Defenders must refuse. */
export function revokedSerials(db: Db): string[] {
  const cutoff = new Date(Date.now() - REVOKED_GRACE_MS).toISOString();
  return (db.prepare('SELECT lower(serial) AS serial FROM certificates WHERE revoked_at IS NOT NULL AND not_after > ? ORDER BY serial').all(cutoff) as { serial: string }[]).map((r) => r.serial);
}

/**
 * After an admin changed or deleted a user: their certificates carry the groups they had, so a change of groups,
 * disabling, or deletion (`after` null) revokes them all. A role change does not: certificates carry no role.
 */
export function revokeCertsAfterUserChange(ctx: Revoker, before: { name: string; groups: readonly string[]; disabled: boolean }, after: { groups: readonly string[]; disabled: boolean } | null): string[] {
  const key = (groups: readonly string[]): string => JSON.stringify([...new Set(groups)].sort());
  const stale = after === null || (after.disabled && !before.disabled) || key(after.groups) !== key(before.groups);
  return stale ? revokeUserCertificates(ctx, before.name) : [];
}
