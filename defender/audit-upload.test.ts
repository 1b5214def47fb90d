import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { auditBatch, type AuditEventWire } from '../shared/wire/defender-console.js';
import type { AuditEvent } from './audit-log.js';
import { openAuditSpool, type AuditSpool } from './audit-spool.js';
import { startAuditUpload, toWireEvent, type AuditUpload } from './audit-upload.js';
import { Backoff } from './backoff.js';
import type { Logger } from './log.js';

const quiet: Logger = { info: () => undefined, warn: () => undefined, error: () => undefined };
const event = (n: number, extra: Partial<AuditEvent> = {}): AuditEvent => ({
  time: new Date(1_700_000_000_000 + n).toISOString(), user: 'bruce', groups: ['devs'], host: 'dev-a', action: 'container_list', method: 'GET',
  path: `/containers/json?n=${n}`, decision: 'allow', rule: 'r', status: null, client: '127.0.0.1', ...extra,
});

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

function setup(): { spool: AuditSpool; dir: string } {
  const dir = mkdtempSync(join(tmpdir(), 'drawbridge-upload-'));
  const spool = openAuditSpool(join(dir, 'audit'), { flushMs: 2 });
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }), () => spool.close());
  return { spool, dir };
}

/** An in-memory stand-in for the Console's audit store: stores (seq) once, answers the contract's AuditAck. */
function consoleStore(fail: () => boolean = () => false) {
  const stored = new Map<number, AuditEventWire>();
  const batches: number[] = [];
  return {
    stored,
    batches,
    post: async (events: AuditEventWire[]) => {
      batches.push(events.length);
      if (fail()) throw new Error('connect ECONNREFUSED');
      // What the real Console refuses: a body over its 1 MiB limit (413), then anything off the contract.
      if (Buffer.byteLength(JSON.stringify({ events })) > 1024 * 1024) return { status: 413, body: { message: 'the request body is over 1048576 bytes' } };
      auditBatch.parse({ events });
      let n = 0;
      for (const e of events) if (!stored.has(e.seq)) (stored.set(e.seq, e), n++);
      return { status: 200, body: { stored: n, ackedSeq: Math.max(0, ...stored.keys()) } };
    },
  };
}

function upload(spool: AuditSpool, post: Parameters<typeof startAuditUpload>[1]): AuditUpload {
  const u = startAuditUpload(spool, post, quiet, new Backoff({ initialMs: 5, maxMs: 20 }));
  cleanups.push(() => u.stop());
  return u;
}

describe('audit upload', () => {
  it('delivers everything in batches of at most 500, each event once, and empties the spool', async () => {
    const { spool } = setup();
    const store = consoleStore();
    upload(spool, store.post);
    for (let i = 1; i <= 1234; i++) spool.write(event(i));
    await spool.flush();
    await expect.poll(() => store.stored.size, { timeout: 10_000 }).toBe(1234);
    expect(Math.max(...store.batches)).toBeLessThanOrEqual(500);
    await expect.poll(() => spool.backlog).toBe(0);
    expect([...store.stored.keys()].sort((a, b) => a - b)).toEqual(Array.from({ length: 1234 }, (_, i) => i + 1));
  });

  it('keeps batches under the Console body limit: 600 events with 8 KiB request paths all arrive', async () => {
    const { spool } = setup();
    const store = consoleStore();
    upload(spool, store.post);
    for (let i = 1; i <= 600; i++) spool.write(event(i, { path: `/v1.43/containers/${'a'.repeat(9000)}/json?n=${i}` }));
    spool.write(event(601));
    await spool.flush();
    await expect.poll(() => store.stored.has(601), { timeout: 10_000 }).toBe(true);
    expect(store.stored.size).toBe(601);
    expect(store.batches.length).toBeGreaterThan(2); // no 500-event batch of these fits
    expect(store.stored.get(1)!.path).toHaveLength(8192); // cut to the contract's limit
  });

  it('keeps events while the Console is away and delivers them when it is back', async () => {
    const { spool } = setup();
    let away = true;
    const store = consoleStore(() => away);
    upload(spool, store.post);
    for (let i = 1; i <= 10; i++) spool.write(event(i));
    await spool.flush();
    await expect.poll(() => store.batches.length).toBeGreaterThan(2); // retried
    expect(store.stored.size).toBe(0);
    expect(spool.backlog).toBe(10);
    away = false;
    await expect.poll(() => store.stored.size, { timeout: 5000 }).toBe(10);
    await expect.poll(() => spool.backlog).toBe(0);
  });

  it('fits events to the wire limits instead of sending a batch the Console would refuse', () => {
    const wire = toWireEvent({ seq: 1, ...event(1, { path: `/${'a'.repeat(20_000)}`, reason: 'r'.repeat(5000), action: 'not_an_action' }) });
    expect(wire.path).toHaveLength(8192);
    expect(wire.reason).toHaveLength(1024);
    expect(wire.action).toBe('unknown');
    expect(() => auditBatch.parse({ events: [wire] })).not.toThrow();
  });

  it('keeps the secret rule and secret names of an event (never a value: the event has none)', () => {
    const secrets = { rules: ['db-env'], names: ['DB_PASSWORD'] };
    const wire = toWireEvent({ seq: 2, ...event(2, { action: 'container_create', secrets }) });
    expect(wire.secrets).toEqual(secrets);
    expect(auditBatch.parse({ events: [wire] }).events[0]!.secrets).toEqual(secrets);
  });
});
