/**
 * The register of enrolled Defenders (`defenders` table) and their certificates.
 *
 * - Host names are case-insensitive (`dev-a` and `DEV-A` are one Defender); the enrolled spelling is kept.
 * - `listener` is the listener the Console wants. An admin's choice (PUT …/listener) is pinned: a re-enrolment
 *   keeps it instead of the one the Defender asks for. What the Defender last reported running is kept apart.
 * - A Defender owns two certificates: a client certificate (kind 'defender', what authenticates it to the
 *   Console) and a server certificate (kind 'defender-server', which never does). Re-enrolling or deleting a
 *   Defender revokes every unexpired certificate of that host, and bumps the policy version in the same
 *   transaction so every Defender learns the revocation.
 * - Renewal (renew-defender.ts) replaces both certificates. The client certificate it replaced is kept as
 *   `previousCertSerial` and revoked as soon as the Defender authenticates with the new one (`confirmCertificate`):
 *   until then the Defender may not have the new one (an answer lost on the way) and must still reach us. So at
 *   most two client certificates are valid: a renewal revokes every other one of the host but the one it was asked
 *   with and the one it issues (a renewal with an unconfirmed renewed certificate leaves none before it). The old
 *   server certificate is left to expire: open connections use it, and no client checks server revocation.
 * - Each enrolment has an id (`audit_enrolment`, its first client certificate's serial) that its audit seqs are
 *   stored under (audit-store.ts): a re-enrolled Defender's audit starts afresh, whatever the old one sent.
 */
import { listenerConfig, type ListenerConfig } from '../../shared/wire/defender-console.js';
import type { Db } from '../db/database.js';
import { nowIso } from '../db/database.js';
import type { PolicyClock } from '../policy/policy-clock.js';

/** The certificate kinds a Defender's certificates are registered under (see migration 3). */
export const DEFENDER_CLIENT_KIND = 'defender';
export const DEFENDER_SERVER_KIND = 'defender-server';

export interface DefenderRecord {
  readonly hostName: string;
  readonly address: string | null;
  readonly version: string | null;
  readonly listener: ListenerConfig;
  /** The listener the Defender last said it runs (heartbeat); null before its first heartbeat. */
  readonly activeListener: ListenerConfig | null;
  readonly listenerPinned: boolean;
  readonly policyVersion: number;
  readonly enrolledAt: string;
  readonly lastSeen: string | null;
  readonly auditBacklog: number;
  readonly clientCertSerial: string | null;
  readonly serverCertSerial: string | null;
  /** The SANs of its server certificate (null for Defenders enrolled before renewal existed). */
  readonly serverNames: ServerNames | null;
  /** The client certificate the last renewal replaced, while the Defender has not used the new one yet. */
  readonly previousCertSerial: string | null;
}

export interface ServerNames {
  readonly dnsNames: readonly string[];
  readonly ips: readonly string[];
}

interface DefenderRow {
  host_name: string;
  address: string | null;
  version: string | null;
  listener_json: string;
  reported_listener_json: string | null;
  listener_pinned: number;
  cert_serial: string | null;
  server_cert_serial: string | null;
  policy_version: number;
  enrolled_at: string;
  last_seen: string | null;
  audit_backlog: number;
  server_names_json: string | null;
  previous_cert_serial: string | null;
}

function parseListener(json: string): ListenerConfig {
  return listenerConfig.parse(JSON.parse(json));
}

function toRecord(r: DefenderRow): DefenderRecord {
  return {
    hostName: r.host_name,
    address: r.address,
    version: r.version,
    listener: parseListener(r.listener_json),
    activeListener: r.reported_listener_json === null ? null : parseListener(r.reported_listener_json),
    listenerPinned: r.listener_pinned === 1,
    policyVersion: r.policy_version,
    enrolledAt: r.enrolled_at,
    lastSeen: r.last_seen,
    auditBacklog: r.audit_backlog,
    clientCertSerial: r.cert_serial,
    serverCertSerial: r.server_cert_serial,
    serverNames: r.server_names_json === null ? null : (JSON.parse(r.server_names_json) as ServerNames),
    previousCertSerial: r.previous_cert_serial,
  };
}

export interface Enrolment {
  readonly hostName: string;
  readonly address: string | null;
  readonly version: string;
  readonly requestedListener: ListenerConfig;
  readonly clientCertSerial: string;
  readonly serverCertSerial: string;
  readonly serverNames: ServerNames;
}

/** Node may print a serial without its leading zero nibble: compare without leading zeros. */
export const sameSerial = (a: string, b: string): boolean => a.toLowerCase().replace(/^0+/, '') === b.toLowerCase().replace(/^0+/, '');

export class DefenderStore {
  constructor(
    private readonly db: Db,
    private readonly clock: PolicyClock,
  ) {}

  get(hostName: string): DefenderRecord | null {
    const row = this.db.prepare('SELECT * FROM defenders WHERE host_name = ?').get(hostName) as DefenderRow | undefined;
    return row ? toRecord(row) : null;
  }

  /** By host name (case-insensitive); `after` is the last host name of the previous page. */
  list(limit: number, after: string | null): DefenderRecord[] {
    const rows = this.db.prepare('SELECT * FROM defenders WHERE host_name > ? ORDER BY host_name LIMIT ?').all(after ?? '', limit) as DefenderRow[];
    return rows.map(toRecord);
  }

  /** Every Defender's wanted listener as JSON text, by lower-case host name (one query for the push hub). */
  listenerJsonByHost(): Map<string, string> {
    const rows = this.db.prepare('SELECT host_name, listener_json FROM defenders').all() as { host_name: string; listener_json: string }[];
    return new Map(rows.map((r) => [r.host_name.toLowerCase(), r.listener_json]));
  }

  listenerJson(hostName: string): string | null {
    const row = this.db.prepare('SELECT listener_json FROM defenders WHERE host_name = ?').get(hostName) as { listener_json: string } | undefined;
    return row?.listener_json ?? null;
  }

  /**
   * Each name (DNS name or IP, lower case) in the server certificates of Defenders other than `hostName`: their host
   * names and recorded SANs, with the Defender that has it.
   */
  namesOfOthers(hostName: string): Map<string, string> {
    const rows = this.db.prepare('SELECT host_name, server_names_json FROM defenders WHERE host_name != ?').all(hostName) as Pick<DefenderRow, 'host_name' | 'server_names_json'>[];
    const out = new Map<string, string>();
    for (const r of rows) {
      const names = r.server_names_json === null ? null : (JSON.parse(r.server_names_json) as ServerNames);
      for (const n of [r.host_name, ...(names?.dnsNames ?? []), ...(names?.ips ?? [])]) out.set(n.toLowerCase(), r.host_name);
    }
    return out;
  }

  /**
   * Registers (or re-registers) a Defender whose new certificates are already issued: revokes its older ones,
   * upserts its row, bumps the policy version when anything was revoked. Returns the listener it must run.
   * `guard` runs first, in the same transaction (a check that must still hold when the row is written).
   */
  enrol(e: Enrolment, guard: () => void = () => {}): DefenderRecord {
    return this.db.transaction(() => {
      guard();
      const now = nowIso();
      const revoked = this.db
        .prepare(
          `UPDATE certificates SET revoked_at = ? WHERE kind IN (?, ?) AND subject_name = ? COLLATE NOCASE
           AND revoked_at IS NULL AND not_after > ? AND serial NOT IN (?, ?)`,
        )
        .run(now, DEFENDER_CLIENT_KIND, DEFENDER_SERVER_KIND, e.hostName, now, e.clientCertSerial, e.serverCertSerial).changes;
      const listener = JSON.stringify(e.requestedListener);
      this.db
        .prepare(
          `INSERT INTO defenders (host_name, address, version, listener_json, cert_serial, server_cert_serial, server_names_json, audit_enrolment, policy_version, enrolled_at, last_seen)
           VALUES (?, ?, ?, ?, ?, ?, ?, ?, 0, ?, ?)
           ON CONFLICT(host_name) DO UPDATE SET host_name = excluded.host_name, address = excluded.address, version = excluded.version,
             listener_json = CASE WHEN listener_pinned = 1 THEN listener_json ELSE excluded.listener_json END,
             cert_serial = excluded.cert_serial, server_cert_serial = excluded.server_cert_serial, reported_listener_json = NULL,
             server_names_json = excluded.server_names_json, previous_cert_serial = NULL, audit_enrolment = excluded.audit_enrolment,
             policy_version = 0, audit_backlog = 0, enrolled_at = excluded.enrolled_at, last_seen = excluded.last_seen`,
        )
        .run(e.hostName, e.address, e.version, listener, e.clientCertSerial, e.serverCertSerial, JSON.stringify(e.serverNames), e.clientCertSerial.toLowerCase(), now, now);
      if (revoked > 0) this.clock.bump('revocation');
      return this.get(e.hostName)!;
    })();
  }

  /**
   * Records renewed certificates for a Defender that authenticated with `presentedSerial`. When that is the
   * certificate an earlier renewal replaced (the Defender never got or used that renewal's answer), the unused
   * pair is revoked. Every other client certificate of the host but the presented and the new one is revoked too.
   * False when the Defender is not registered (any more).
   */
  renew(hostName: string, presentedSerial: string, issued: { clientCertSerial: string; serverCertSerial: string }): boolean {
    return this.db.transaction(() => {
      const row = this.get(hostName);
      if (!row) return false;
      const retry = row.previousCertSerial !== null && sameSerial(row.previousCertSerial, presentedSerial);
      let revoked = 0;
      if (retry) {
        const unused = [row.clientCertSerial, row.serverCertSerial].filter((s): s is string => s !== null);
        revoked += unused.reduce((n, serial) => n + this.db.prepare('UPDATE certificates SET revoked_at = ? WHERE serial = ? AND revoked_at IS NULL').run(nowIso(), serial).changes, 0);
      }
      revoked += this.revokeClientCertsExcept(row.hostName, [presentedSerial, issued.clientCertSerial]);
      if (revoked > 0) this.clock.bump('revocation');
      this.db
        .prepare('UPDATE defenders SET cert_serial = ?, server_cert_serial = ?, previous_cert_serial = ? WHERE host_name = ?')
        .run(issued.clientCertSerial, issued.serverCertSerial, retry ? row.previousCertSerial : presentedSerial, row.hostName);
      return true;
    })();
  }

  /**
   * Revokes every unexpired client certificate of `hostName` but `keep`: after a renewal, only the certificate it
   * was asked with and the one it issued may authenticate (a renewal with a renewed certificate not confirmed yet
   * would otherwise leave the one before it valid for good).
   */
  private revokeClientCertsExcept(hostName: string, keep: readonly string[]): number {
    const now = nowIso();
    const serials = (this.db
      .prepare('SELECT serial FROM certificates WHERE kind = ? AND subject_name = ? COLLATE NOCASE AND revoked_at IS NULL AND not_after > ?')
      .all(DEFENDER_CLIENT_KIND, hostName, now) as { serial: string }[]).map((r) => r.serial).filter((serial) => !keep.some((k) => sameSerial(k, serial)));
    const revoke = this.db.prepare('UPDATE certificates SET revoked_at = ? WHERE serial = ? AND revoked_at IS NULL');
    return serials.reduce((n, serial) => n + revoke.run(now, serial).changes, 0);
  }

  /**
   * The Defender authenticated with `serial`: if that is its renewed client certificate, the one it replaced is
   * revoked (and the policy version bumped, so streams still on it end). Returns the revoked serial, or null.
   */
  confirmCertificate(hostName: string, serial: string): string | null {
    const row = this.get(hostName);
    if (!row?.previousCertSerial || !row.clientCertSerial || !sameSerial(row.clientCertSerial, serial)) return null;
    const previous = row.previousCertSerial;
    return this.db.transaction(() => {
      const changed = this.db.prepare('UPDATE defenders SET previous_cert_serial = NULL WHERE host_name = ? AND previous_cert_serial = ?').run(row.hostName, previous).changes;
      if (changed === 0) return null;
      if (this.db.prepare('UPDATE certificates SET revoked_at = ? WHERE serial = ? AND revoked_at IS NULL').run(nowIso(), previous).changes > 0) this.clock.bump('revocation');
      return previous;
    })();
  }

  /** What a Defender reports about itself (heartbeat). False when it is not registered (any more). */
  recordStatus(hostName: string, s: { version: string; policyVersion: number; listener: ListenerConfig; auditBacklog: number }): boolean {
    return (
      this.db
        .prepare('UPDATE defenders SET version = ?, policy_version = ?, reported_listener_json = ?, audit_backlog = ?, last_seen = ? WHERE host_name = ?')
        .run(s.version, s.policyVersion, JSON.stringify(s.listener), s.auditBacklog, nowIso(), hostName).changes > 0
    );
  }

  touch(hostName: string): void {
    this.db.prepare('UPDATE defenders SET last_seen = ? WHERE host_name = ?').run(nowIso(), hostName);
  }

  /** Pins the listener an admin chose and bumps the policy version, in one transaction. Null when unknown. */
  setListener(hostName: string, listener: ListenerConfig): { defender: DefenderRecord; version: number } | null {
    return this.db.transaction(() => {
      const changed = this.db.prepare('UPDATE defenders SET listener_json = ?, listener_pinned = 1 WHERE host_name = ?').run(JSON.stringify(listener), hostName).changes;
      if (changed === 0) return null;
      const version = this.clock.bump('listener');
      return { defender: this.get(hostName)!, version };
    })();
  }

  /** Revokes the Defender's certificates and forgets it; false when there is no such Defender. */
  delete(hostName: string): boolean {
    return this.db.transaction(() => {
      const now = nowIso();
      const row = this.get(hostName);
      if (!row) return false;
      const revoked = this.db
        .prepare('UPDATE certificates SET revoked_at = ? WHERE kind IN (?, ?) AND subject_name = ? COLLATE NOCASE AND revoked_at IS NULL AND not_after > ?')
        .run(now, DEFENDER_CLIENT_KIND, DEFENDER_SERVER_KIND, row.hostName, now).changes;
      this.db.prepare('DELETE FROM defenders WHERE host_name = ?').run(row.hostName);
      // Also a version when nothing was revoked: the hub then closes the deleted Defender's open stream.
      this.clock.bump(revoked > 0 ? 'revocation' : 'defender');
      return true;
    })();
  }
}
