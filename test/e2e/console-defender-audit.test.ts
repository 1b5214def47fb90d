// Audit delivery from Defenders to the Console (shared/wire/defender-console.ts), through the real `drawbridge
// console` binary and its real HTTPS stack, as enrolled Defenders with certificates made here: exactly once, under
// the Defender that sent it, queried by admins and auditors, and numbered per enrolment so an old key's seqs can
// neither block nor pre-empt a re-enrolled Defender's.
import { describe, expect, test } from 'vitest';
import { auditAck, type AuditEventWire } from '../../shared/wire/defender-console.js';
import { clientTls, enrolAsAdmin, enrollDefender, joinToken as makeJoinToken, mtlsCall, type EnrolledDefender } from '../support/console-defender-client.js';
import { consoleForFile, signedInAs } from '../support/console-process.js';
import { pollUntil } from '../support/poll.js';

const cp = consoleForFile();
const joinToken = (body: Record<string, unknown> = {}) => makeJoinToken(cp.proc, cp.admin, body);
const enrol = (host: string): Promise<EnrolledDefender> => enrolAsAdmin(cp.proc, cp.admin, host);
const userToken = (name: string, role: string): Promise<string> => signedInAs(cp.proc, cp.admin, name, role);
const call = (d: EnrolledDefender, method: string, path: string, json?: unknown) => mtlsCall(cp.proc.url, clientTls(d), method, path, json === undefined ? {} : { json });

describe('audit', () => {
  const event = (seq: number, over: Partial<AuditEventWire> = {}): AuditEventWire => ({
    seq, time: `2030-01-01T00:00:0${seq}.000Z`, user: 'bruce', groups: ['devs'], host: 'audit-a', action: 'container_list', method: 'GET',
    path: '/v1.45/containers/json', decision: 'allow', rule: 'devs-read-only', status: 200, client: '127.0.0.1:50000', ...over,
  });

  test('a batch sent twice is stored once, under the Defender that sent it', async () => {
    const a = await enrol('audit-a');
    const b = await enrol('audit-b');
    const batch = { events: [event(1), event(2, { user: 'alice', decision: 'deny', action: 'container_create', rule: null }), event(3, { host: 'spoofed' })] };
    const first = await call(a, 'POST', '/api/v1/defenders/audit', batch);
    expect(first.status, first.text).toBe(200);
    expect(auditAck.parse(first.body)).toEqual({ stored: 3, ackedSeq: 3 });
    expect((await call(a, 'POST', '/api/v1/defenders/audit', batch)).body).toEqual({ stored: 0, ackedSeq: 3 });
    expect((await call(a, 'POST', '/api/v1/defenders/audit', { events: [event(3), event(4, { time: '2030-01-01T01:00:00+01:00' })] })).body).toEqual({ stored: 1, ackedSeq: 4 });
    // Another Defender's seqs are its own.
    expect((await call(b, 'POST', '/api/v1/defenders/audit', { events: [event(1, { host: 'audit-b', user: 'carol' })] })).body).toEqual({ stored: 1, ackedSeq: 1 });
    const invalid = await call(a, 'POST', '/api/v1/defenders/audit', { events: [event(5, { action: 'rm_rf' })] });
    expect([invalid.status, invalid.body.error.field]).toEqual([400, 'body.events.0.action']);

    const all = await cp.proc.call('GET', '/api/v1/audit', { token: cp.admin });
    expect(all.status).toBe(200);
    expect(all.body.items.map((e: { defender: string; seq: number }) => `${e.defender}#${e.seq}`)).toEqual(['audit-b#1', 'audit-a#4', 'audit-a#3', 'audit-a#2', 'audit-a#1']);
    expect(all.body.items[2]).toMatchObject({ defender: 'audit-a', host: 'spoofed' });
    expect(all.body.items[1].time).toBe('2030-01-01T00:00:00.000Z'); // normalised to UTC
  });

  test('queries filter by user, host, action, decision and time, page newest first, and are for admins and auditors', async () => {
    const auditor = await userToken('the-auditor', 'auditor');
    const q = async (query: string, token = auditor) => {
      const r = await cp.proc.call('GET', `/api/v1/audit${query}`, { token });
      expect(r.status, r.text).toBe(200);
      return r.body.items.map((e: { defender: string; seq: number }) => `${e.defender}#${e.seq}`);
    };
    expect(await q('?user=ALICE')).toEqual(['audit-a#2']);
    expect(await q('?host=audit-b')).toEqual(['audit-b#1']);
    expect(await q('?action=container_create')).toEqual(['audit-a#2']);
    expect(await q('?decision=allow&user=bruce')).toEqual(['audit-a#4', 'audit-a#3', 'audit-a#1']);
    expect(await q(`?from=${encodeURIComponent('2030-01-01T00:00:01Z')}&to=${encodeURIComponent('2030-01-01T00:00:03Z')}`)).toEqual(['audit-b#1', 'audit-a#2', 'audit-a#1']);
    expect(await q(`?from=${encodeURIComponent('2030-01-01T02:00:02+02:00')}`)).toEqual(['audit-a#3', 'audit-a#2']);

    const page1 = await cp.proc.call('GET', '/api/v1/audit?limit=2', { token: cp.admin });
    expect(page1.body.items).toHaveLength(2);
    const page2 = await cp.proc.call('GET', `/api/v1/audit?limit=2&cursor=${page1.body.nextCursor}`, { token: cp.admin });
    const page3 = await cp.proc.call('GET', `/api/v1/audit?limit=2&cursor=${page2.body.nextCursor}`, { token: cp.admin });
    expect([...page1.body.items, ...page2.body.items, ...page3.body.items].map((e: { id: number }) => e.id)).toEqual((await cp.proc.call('GET', '/api/v1/audit', { token: cp.admin })).body.items.map((e: { id: number }) => e.id));
    expect(page3.body.nextCursor).toBeNull();

    const badTime = await cp.proc.call('GET', '/api/v1/audit?from=yesterday', { token: cp.admin });
    expect([badTime.status, badTime.body.error.field]).toEqual([400, 'query.from']);
    expect((await cp.proc.call('GET', '/api/v1/audit', { token: await userToken('audit-op', 'operator') })).status).toBe(403);
  });

  test("seqs are the enrolment's: what an old key posted neither blocks nor pre-empts a re-enrolled Defender; far jumps are refused", async () => {
    const host = 'audit-poison';
    const at = (seq: number, over: Partial<AuditEventWire> = {}) => event(seq, { host, user: 'mallory', time: '2030-01-02T00:00:00.000Z', ...over });
    const stolen = await enrol(host);
    // The thief's first batch of the enrolment: the highest seq there is, and seqs ahead of the real Defender's.
    expect((await call(stolen, 'POST', '/api/v1/defenders/audit', { events: [at(1, { path: '/forged' }), at(2, { path: '/forged' })] })).body).toEqual({ stored: 2, ackedSeq: 2 });
    const far = await call(stolen, 'POST', '/api/v1/defenders/audit', { events: [at(3), at(Number.MAX_SAFE_INTEGER)] });
    expect([far.status, far.body.error?.field], far.text).toEqual([400, 'body.events.1.seq']);
    expect((await call(stolen, 'POST', '/api/v1/defenders/audit', { events: [at(2 + 1_000_000, { path: '/forged' })] })).status).toBe(200); // at the limit
    const poisoned = await enrol('audit-poison-2');
    expect((await call(poisoned, 'POST', '/api/v1/defenders/audit', { events: [at(Number.MAX_SAFE_INTEGER, { host: 'audit-poison-2' })] })).status).toBe(200);

    // Re-enrolled: seqs start afresh, and the real Defender's events 1..3 are all stored.
    const r = await enrollDefender(cp.proc, (await joinToken({ hostName: host })).token, host);
    if (!r.ok) throw new Error(r.res.text);
    expect((await mtlsCall(cp.proc.url, clientTls(r.defender), 'POST', '/api/v1/defenders/audit', { json: { events: [at(1), at(2), at(3)] } })).body).toEqual({ stored: 3, ackedSeq: 3 });
    const again = await enrollDefender(cp.proc, (await joinToken({ hostName: 'audit-poison-2' })).token, 'audit-poison-2');
    if (!again.ok) throw new Error(again.res.text);
    expect((await mtlsCall(cp.proc.url, clientTls(again.defender), 'POST', '/api/v1/defenders/audit', { json: { events: [at(1, { host: 'audit-poison-2' })] } })).body).toEqual({ stored: 1, ackedSeq: 1 });

    // An event that enrolment stored but whose answer was lost is sent again after a re-enrolment: held once, acknowledged.
    const lost = at(4, { path: '/lost-answer', time: '2030-01-02T00:00:04.000Z' });
    expect((await mtlsCall(cp.proc.url, clientTls(r.defender), 'POST', '/api/v1/defenders/audit', { json: { events: [lost] } })).body).toEqual({ stored: 1, ackedSeq: 4 });
    const third = await enrollDefender(cp.proc, (await joinToken({ hostName: host })).token, host);
    if (!third.ok) throw new Error(third.res.text);
    expect((await mtlsCall(cp.proc.url, clientTls(third.defender), 'POST', '/api/v1/defenders/audit', { json: { events: [lost] } })).body).toEqual({ stored: 0, ackedSeq: 4 });
    expect((await mtlsCall(cp.proc.url, clientTls(third.defender), 'POST', '/api/v1/defenders/audit', { json: { events: [lost, at(5)] } })).body).toEqual({ stored: 1, ackedSeq: 5 });
    const stored = (await cp.proc.call('GET', `/api/v1/audit?host=${host}&limit=500`, { token: cp.admin })).body.items as { seq: number; path: string }[];
    expect(stored.filter((e) => e.path === '/lost-answer')).toHaveLength(1);
  });
});

test('the Console logged no internal errors', () => {
  expect(cp.proc.log()).not.toMatch(/ ERROR drawbridge-console: request failed/);
});
