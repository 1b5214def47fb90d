// The register on a real (in-memory) SQLite database with the real migrations: revocation, the lists the push
// hub reads, pagination keys, and which user changes make certificates stale.
import Database from 'better-sqlite3';
import { beforeEach, describe, expect, it } from 'vitest';
import { migrate, type Db } from '../db/database.js';
import { PolicyClock } from '../policy/policy-clock.js';
import {
  getCertificate, listCertificates, normaliseSerial, pageKey, revokeCertificate, revokeCertsAfterUserChange, revokedSerials, revokeUserCertificates, REVOKED_GRACE_MS, type Revoker,
} from './certificate-register.js';

const HOUR = 3600_000;
const iso = (offsetMs: number): string => new Date(Date.now() + offsetMs).toISOString();

let db: Db;
let ctx: Revoker;
let clock: PolicyClock;

function insert(serial: string, subject: string, opts: { kind?: string; notAfter?: string; createdAt?: string } = {}): void {
  db.prepare('INSERT INTO certificates (serial, kind, subject_name, groups_json, not_before, not_after, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)')
    .run(serial, opts.kind ?? 'user', subject, '["devs"]', iso(-HOUR), opts.notAfter ?? iso(HOUR), opts.createdAt ?? iso(0));
}

beforeEach(() => {
  db = new Database(':memory:');
  migrate(db);
  clock = new PolicyClock(db);
  ctx = { db, policy: clock };
});

describe('revocation', () => {
  it('sets revoked_at and bumps the policy version once; revoking again changes nothing', () => {
    insert('01aa', 'alice');
    const v = clock.current();
    expect(revokeCertificate(ctx, '01aa')).toMatchObject({ serial: '01aa', status: 'revoked', revokedAt: expect.any(String) });
    expect(clock.current()).toBe(v + 1);
    const first = getCertificate(db, '01aa')!.revokedAt;
    expect(revokeCertificate(ctx, '01aa')!.revokedAt).toBe(first);
    expect(clock.current()).toBe(v + 1);
    expect(revokeCertificate(ctx, '02bb')).toBeNull();
  });

  it("revokes all of a user's unexpired user certificates, by name case-insensitively, with one bump", () => {
    insert('0a', 'alice');
    insert('0b', 'ALICE');
    insert('0c', 'alice', { notAfter: iso(-1000) }); // expired: nothing to revoke
    insert('0d', 'alice', { kind: 'defender-server' }); // a server certificate named alice is not hers
    insert('0e', 'bob');
    const v = clock.current();
    expect(revokeUserCertificates(ctx, 'Alice').sort()).toEqual(['0a', '0b']);
    expect(clock.current()).toBe(v + 1);
    expect(revokeUserCertificates(ctx, 'alice')).toEqual([]);
    expect(clock.current()).toBe(v + 1);
    expect(getCertificate(db, '0e')!.status).toBe('valid');
  });

  it('revokedSerials lists revoked certificates until REVOKED_GRACE_MS after they expired, lowercase', () => {
    insert('0A1B', 'alice');
    insert('0c', 'alice', { notAfter: iso(-REVOKED_GRACE_MS - 1000) });
    insert('0d', 'bob');
    // Expired by our clock, not by that of a Defender an hour behind: still on the list.
    insert('0e', 'bob', { notAfter: iso(-HOUR) });
    db.prepare('UPDATE certificates SET revoked_at = ?').run(iso(0));
    db.prepare("UPDATE certificates SET revoked_at = NULL WHERE serial = '0d'").run();
    expect(revokedSerials(db)).toEqual(['0a1b', '0e']);
  });

  it.each([
    // before groups, before disabled, after (null = deleted), stale?
    [['devs'], false, { groups: ['devs'], disabled: false }, false],
    [['devs', 'ops'], false, { groups: ['ops', 'devs', 'ops'], disabled: false }, false],
    [['devs'], false, { groups: ['devs', 'ops'], disabled: false }, true],
    [['devs'], false, { groups: [], disabled: false }, true],
    [['devs'], false, { groups: ['devs'], disabled: true }, true],
    [['devs'], true, { groups: ['devs'], disabled: false }, false],
    [['devs'], false, null, true],
  ] as const)('groups %j disabled %s → %j: revoked %s', (groups, disabled, after, stale) => {
    insert('0a', 'alice');
    const revoked = revokeCertsAfterUserChange(ctx, { name: 'alice', groups, disabled }, after);
    expect(revoked).toEqual(stale ? ['0a'] : []);
  });
});

describe('listing', () => {
  it('pages newest first with stable keys, filters by user and kind', () => {
    for (let i = 0; i < 5; i++) insert(`0${i}`, i % 2 ? 'bob' : 'alice', { createdAt: iso(i * 1000) });
    insert('1f', 'dev-a', { kind: 'defender', createdAt: iso(0) });
    const first = listCertificates(db, {}, 4, null);
    expect(first.map((c) => c.serial)).toEqual(['04', '03', '02', '01']);
    const rest = listCertificates(db, {}, 4, pageKey(first[3]!));
    expect(rest.map((c) => c.serial)).toEqual(['1f', '00']);
    expect(listCertificates(db, { user: 'ALICE' }, 10, null).map((c) => c.serial)).toEqual(['04', '02', '00']);
    expect(listCertificates(db, { kind: 'defender' }, 10, null).map((c) => c.subject)).toEqual(['dev-a']);
  });

  it.each([
    ['AB:CD:01', 'abcd01'],
    ['1ab', '01ab'],
    ['0a1B', '0a1b'],
  ])('normaliseSerial(%s) = %s', (input, out) => {
    expect(normaliseSerial(input)).toBe(out);
  });

  it('refuses a serial that is not hex, naming the field', () => {
    expect(() => normaliseSerial('xyz')).toThrow('serial: must be a certificate serial number in hex');
  });
});
