// The audit store on a real (in-memory) SQLite database: a Console upgraded from before audit seqs were keyed by
// enrolment keeps its events, and a Defender enrolled before goes on with its sequence, exactly once.
import Database from 'better-sqlite3';
import { describe, expect, it } from 'vitest';
import type { AuditEventWire } from '../../shared/wire/defender-console.js';
import { migrate, nowIso } from '../db/database.js';
import { MIGRATIONS } from '../db/migrations.js';
import { AuditStore } from './audit-store.js';

const event = (seq: number): AuditEventWire => ({
  seq, time: `2030-01-01T00:00:0${seq}.000Z`, user: 'bruce', groups: ['devs'], host: 'dev-a', action: 'container_list', method: 'GET',
  path: '/v1.45/containers/json', decision: 'allow', rule: 'r', status: 200, client: '127.0.0.1:50000',
});

describe('upgrading to audit seqs by enrolment (migration 10)', () => {
  it('keeps the stored events, and a Defender enrolled before continues its sequence without storing anything twice', () => {
    const db = new Database(':memory:');
    for (const sql of MIGRATIONS.slice(0, 9)) db.exec(sql);
    db.pragma('user_version = 9');
    db.prepare("INSERT INTO defenders (host_name, listener_json, cert_serial, enrolled_at) VALUES ('dev-a', '{}', '0a', ?)").run(nowIso());
    db.prepare("INSERT INTO audit (defender, seq, time, groups_json, host, action, method, path, decision) VALUES ('dev-a', 1, ?, '[]', 'dev-a', 'container_list', 'GET', '/v1.45/containers/json', 'allow')")
      .run(event(1).time);
    migrate(db);

    const audit = new AuditStore(db);
    expect(audit.append('dev-a', [event(1), event(2)])).toEqual({ stored: 1, ackedSeq: 2 });
    expect(audit.query({}, 10, null).map((e) => e.seq)).toEqual([2, 1]);
  });
});
