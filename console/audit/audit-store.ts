/**
 * The audit trail Defenders deliver, stored and queried.
 *
 * - Exactly once: a batch is inserted in one transaction with INSERT OR IGNORE on UNIQUE (defender, seq,
 *   enrolment), so a batch resent after a lost answer stores nothing twice; the answer counts what was new and
 *   acknowledges the highest seq held for that Defender's current enrolment (stored now or before).
 * - Seqs belong to an enrolment (the `audit_enrolment` of its `defenders` row, which every enrolment changes): a
 *   re-enrolled Defender numbers afresh, so seqs a holder of the old key posted (2^53-1, or seqs ahead of the
 *   real ones) neither block nor pre-empt the new Defender's. A re-enrolled Defender may send again events of
 *   its spool that the old enrolment stored (an answer lost just before): an event of an earlier enrolment with
 *   the same seq, time, method and path is that event, and is not stored twice.
 * - Within an enrolment, a seq more than AUDIT_SEQ_MAX_AHEAD beyond the highest stored is refused (400): a
 *   Defender sends its spool in order from what we acknowledged, so such a seq is no honest Defender's.
 * - `defender` is the authenticated Defender (its client certificate), lower-cased; a Defender can never write
 *   rows under another's name. `host` is what the event says.
 * - Times are stored as ISO-8601 UTC (`…Z`) when the Defender's time parses, so range queries compare correctly.
 * - Queries page by id, newest first; filters are exact (user and host case-insensitive).
 */
import { z } from 'zod';
import type { AuditAck, AuditEventWire } from '../../shared/wire/defender-console.js';
import type { Db } from '../db/database.js';
import { consoleErrors, FieldError } from '../errors.js';

/**
 * How far beyond the highest stored seq of an enrolment a batch may reach. An honest Defender's batch starts right
 * after what we acknowledged (a batch is at most 1000 events); the margin is for a Console restored from a backup
 * that lacks the newest events.
 */
export const AUDIT_SEQ_MAX_AHEAD = 1_000_000;

/** A stored audit event: the wire event plus where it came from. */
export type AuditRecord = Readonly<Omit<AuditEventWire, 'groups' | 'reason' | 'secrets'>> & {
  readonly id: number;
  readonly defender: string;
  readonly groups: readonly string[];
  readonly reason: string | null;
  /** The secret rules and secret names the request involved (injection, a leak path refused), or null. */
  readonly secrets: AuditEventWire['secrets'] | null;
};

interface AuditRow {
  id: number;
  defender: string;
  seq: number;
  time: string;
  user_name: string | null;
  groups_json: string;
  host: string;
  action: string;
  method: string;
  path: string;
  decision: AuditRecord['decision'];
  rule: string | null;
  status: number | null;
  client: string | null;
  reason: string | null;
  secrets_json: string | null;
}

function toRecord(r: AuditRow): AuditRecord {
  return {
    id: r.id,
    defender: r.defender,
    seq: r.seq,
    time: r.time,
    user: r.user_name,
    groups: JSON.parse(r.groups_json) as string[],
    host: r.host,
    action: r.action,
    method: r.method,
    path: r.path,
    decision: r.decision,
    rule: r.rule,
    status: r.status,
    client: r.client,
    reason: r.reason,
    secrets: r.secrets_json === null ? null : (JSON.parse(r.secrets_json) as AuditRecord['secrets']),
  };
}

const isoTime = z.iso.datetime({ offset: true, error: 'must be an ISO-8601 time, e.g. 2025-01-31T12:00:00Z' });

export const auditQuery = z.strictObject({
  limit: z.coerce.number().int().min(1).max(500).default(100),
  cursor: z.string().max(512).optional(),
  user: z.string().min(1).max(256).optional(),
  host: z.string().min(1).max(253).optional(),
  action: z.string().min(1).max(64).optional(),
  decision: z.enum(['allow', 'deny', 'reject']).optional(),
  from: isoTime.optional().describe('events at or after this time'),
  to: isoTime.optional().describe('events before this time'),
});
export type AuditQuery = z.output<typeof auditQuery>;

function normaliseTime(time: string): string {
  const ms = Date.parse(time);
  return Number.isNaN(ms) ? time : new Date(ms).toISOString();
}

export class AuditStore {
  constructor(private readonly db: Db) {}

  /** Stores a Defender's batch once; see the module comment. */
  append(defenderHost: string, events: readonly AuditEventWire[]): AuditAck {
    const defender = defenderHost.toLowerCase();
    const insert = this.db.prepare(
      `INSERT OR IGNORE INTO audit (defender, enrolment, seq, time, user_name, groups_json, host, action, method, path, decision, rule, status, client, reason, secrets_json)
       SELECT ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?
       WHERE NOT EXISTS (SELECT 1 FROM audit WHERE defender = ? AND seq = ? AND enrolment != ? AND time = ? AND method = ? AND path = ?)`,
    );
    const highest = this.db.prepare('SELECT COALESCE(MAX(seq), 0) AS seq FROM audit WHERE defender = ? AND enrolment = ?');
    return this.db.transaction(() => {
      const row = this.db.prepare('SELECT audit_enrolment FROM defenders WHERE host_name = ?').get(defenderHost) as { audit_enrolment: string } | undefined;
      if (!row) throw consoleErrors.not_found(`the Defender '${defenderHost}' is not registered; enrol it again`);
      const enrolment = row.audit_enrolment;
      const before = (highest.get(defender, enrolment) as { seq: number }).seq;
      // The first batch of an enrolment sets where it starts (a re-enrolled Defender's spool goes on numbering).
      const tooFar = before > 0 ? events.findIndex((e) => e.seq > before + AUDIT_SEQ_MAX_AHEAD) : -1;
      if (tooFar >= 0) throw new FieldError(`body.events.${tooFar}.seq`, `is more than ${AUDIT_SEQ_MAX_AHEAD} beyond the highest stored for this Defender (${before})`);
      let stored = 0;
      for (const e of events) {
        const time = normaliseTime(e.time);
        stored += insert.run(
          defender, enrolment, e.seq, time, e.user, JSON.stringify(e.groups), e.host, e.action, e.method, e.path, e.decision, e.rule, e.status, e.client, e.reason ?? null, e.secrets ? JSON.stringify(e.secrets) : null,
          defender, e.seq, enrolment, time, e.method, e.path,
        ).changes;
      }
      // Every event of the batch is held now (stored, or found stored before): acknowledged even when it was an
      // earlier enrolment's, or a re-enrolled Defender would send it forever.
      return { stored, ackedSeq: Math.max((highest.get(defender, enrolment) as { seq: number }).seq, ...events.map((e) => e.seq)) };
    })();
  }

  /** Newest first; `beforeId` is the id of the last item of the previous page. */
  query(q: Omit<AuditQuery, 'limit' | 'cursor'>, limit: number, beforeId: number | null): AuditRecord[] {
    const where: string[] = [];
    const args: unknown[] = [];
    const add = (sql: string, value: unknown): void => {
      where.push(sql);
      args.push(value);
    };
    if (q.user !== undefined) add('user_name = ? COLLATE NOCASE', q.user);
    if (q.host !== undefined) add('host = ? COLLATE NOCASE', q.host);
    if (q.action !== undefined) add('action = ?', q.action);
    if (q.decision !== undefined) add('decision = ?', q.decision);
    if (q.from !== undefined) add('time >= ?', normaliseTime(q.from));
    if (q.to !== undefined) add('time < ?', normaliseTime(q.to));
    if (beforeId !== null) add('id < ?', beforeId);
    const sql = `SELECT * FROM audit ${where.length ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY id DESC LIMIT ?`;
    return (this.db.prepare(sql).all(...args, limit) as AuditRow[]).map(toRecord);
  }
}
