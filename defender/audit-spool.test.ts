import { appendFileSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { AuditEvent } from './audit-log.js';
import { openAuditSpool, type AuditSpool } from './audit-spool.js';

const dirs: string[] = [];
const open: AuditSpool[] = [];
function spoolDir(): string {
  const dir = join(mkdtempSync(join(tmpdir(), 'drawbridge-spool-')), 'audit');
  dirs.push(dir);
  return dir;
}
function spool(dir: string, opts: Parameters<typeof openAuditSpool>[1] = {}): AuditSpool {
  const s = openAuditSpool(dir, { flushMs: 5, ...opts });
  open.push(s);
  return s;
}
afterEach(async () => {
  for (const s of open.splice(0)) await s.close().catch(() => undefined);
  for (const d of dirs.splice(0)) rmSync(join(d, '..'), { recursive: true, force: true });
});

function event(n: number): AuditEvent {
  return { time: new Date(1_700_000_000_000 + n).toISOString(), user: `user${n}`, groups: ['devs'], host: 'dev-a', action: 'container_list', method: 'GET', path: '/v1.47/containers/json', decision: 'allow', rule: 'r', status: null, client: '127.0.0.1' };
}
const segments = (dir: string): string[] => readdirSync(dir).filter((f) => f.endsWith('.jsonl')).sort();

describe('audit spool', () => {
  it('numbers events 1, 2, 3… and returns synced ones in order, at most `max`', async () => {
    const dir = spoolDir();
    const s = spool(dir);
    for (let i = 1; i <= 7; i++) s.write(event(i));
    expect(s.lastSeq).toBe(7);
    expect(await s.readPending(10)).toEqual([]); // nothing synced yet: nothing is sent
    await s.flush();
    expect(s.syncedSeq).toBe(7);
    const first = await s.readPending(5);
    expect(first.map((e) => e.seq)).toEqual([1, 2, 3, 4, 5]);
    expect(first[0]).toEqual({ seq: 1, ...event(1) });
    expect(statSync(join(dir, segments(dir)[0]!)).mode & 0o777).toBe(0o600);
  });

  it('flushes by itself within flushMs, and tells listeners', async () => {
    const s = spool(spoolDir(), { flushMs: 5 });
    const synced = new Promise<void>((resolve) => s.onSynced(resolve));
    s.write(event(1));
    await synced;
    expect(s.syncedSeq).toBe(1);
  });

  it('continues the seq after a reopen, and after everything was acknowledged and deleted', async () => {
    const dir = spoolDir();
    const a = spool(dir);
    for (let i = 1; i <= 3; i++) a.write(event(i));
    await a.close();
    const b = spool(dir);
    expect(b.lastSeq).toBe(3);
    b.write(event(4));
    await b.flush();
    expect((await b.readPending(10)).map((e) => e.seq)).toEqual([1, 2, 3, 4]);
    await b.ack(4);
    expect(segments(dir)).toEqual([]); // all delivered: nothing left on disk but the mark
    expect(b.backlog).toBe(0);
    await b.close();
    const c = spool(dir);
    expect(c.lastSeq).toBe(4);
    expect(c.ackedSeq).toBe(4);
    c.write(event(5));
    await c.flush();
    expect((await c.readPending(10)).map((e) => e.seq)).toEqual([5]);
  });

  it('acknowledging drops delivered events and deletes the segments they filled', async () => {
    const dir = spoolDir();
    const s = spool(dir, { segmentBytes: 400, flushEvents: 2 }); // one flush (2 events, ~500 bytes) per segment
    for (let i = 1; i <= 10; i++) {
      s.write(event(i));
      if (i % 2 === 0) await s.flush();
    }
    await s.flush();
    expect(segments(dir).map((f) => Number(f.slice(0, 16)))).toEqual([1, 3, 5, 7, 9]);
    await s.ack(5);
    expect((await s.readPending(100)).map((e) => e.seq)).toEqual([6, 7, 8, 9, 10]);
    expect(segments(dir).map((f) => Number(f.slice(0, 16)))).toEqual([5, 7, 9]); // 5–6 still holds 6
    expect(JSON.parse(readFileSync(join(dir, 'acked'), 'utf8'))).toEqual({ ackedSeq: 5 });
    await s.ack(3); // going back changes nothing
    expect(s.ackedSeq).toBe(5);
    await s.ack(1000); // beyond what was synced: clamped
    expect(s.ackedSeq).toBe(10);
    expect(await s.readPending(100)).toEqual([]);
  });

  it('reads big backlogs batch by batch across segments', async () => {
    const dir = spoolDir();
    const s = spool(dir, { segmentBytes: 4096, flushEvents: 50 });
    for (let i = 1; i <= 1234; i++) s.write(event(i));
    await s.flush();
    const seen: number[] = [];
    for (;;) {
      const batch = await s.readPending(500);
      if (batch.length === 0) break;
      expect(batch.length).toBeLessThanOrEqual(500);
      seen.push(...batch.map((e) => e.seq));
      await s.ack(batch.at(-1)!.seq);
    }
    expect(seen).toEqual(Array.from({ length: 1234 }, (_, i) => i + 1));
    expect(segments(dir)).toEqual([]);
  });

  it('loses nothing synced when the process dies without closing (reopen without close)', async () => {
    const dir = spoolDir();
    const crashed = openAuditSpool(dir, { flushMs: 5 }); // never closed
    for (let i = 1; i <= 20; i++) crashed.write(event(i));
    await crashed.flush();
    await crashed.ack(5);
    const after = spool(dir);
    expect(after.lastSeq).toBe(20);
    expect(after.ackedSeq).toBe(5);
    expect((await after.readPending(100)).map((e) => e.seq)).toEqual(Array.from({ length: 15 }, (_, i) => i + 6));
    after.write(event(21));
    await after.flush();
    expect((await after.readPending(100)).at(-1)!.seq).toBe(21);
  });

  it('cuts a torn last line (a crash in the middle of a write) and never reuses a seq on disk', async () => {
    const dir = spoolDir();
    const a = openAuditSpool(dir, { flushMs: 5 });
    for (let i = 1; i <= 3; i++) a.write(event(i));
    await a.flush();
    const file = join(dir, segments(dir).at(-1)!);
    appendFileSync(file, '{"seq":4,"time":"2025-'); // half a line
    const b = spool(dir);
    expect(b.lastSeq).toBe(3);
    expect(readFileSync(file, 'utf8').endsWith('\n')).toBe(true);
    b.write(event(4));
    await b.flush();
    const pending = await b.readPending(100);
    expect(pending.map((e) => e.seq)).toEqual([1, 2, 3, 4]);
    expect(pending[3]!.user).toBe('user4');
  });

  it('keeps the events and retries when a write fails', async () => {
    const dir = spoolDir();
    const errors: string[] = [];
    const s = spool(dir, { onError: (m) => errors.push(m) });
    s.write(event(1));
    await s.flush();
    await s.ack(1); // everything delivered: the segment is deleted, the next write creates one
    rmSync(dir, { recursive: true, force: true }); // …which fails while the directory is gone
    s.write(event(2));
    await s.flush();
    expect(errors[0]).toMatch(/cannot write the audit spool/);
    expect(s.syncedSeq).toBe(1);
    expect(s.backlog).toBe(1);
    mkdirSync(dir, { recursive: true });
    await s.flush();
    expect(s.syncedSeq).toBe(2);
    expect((await s.readPending(10)).map((e) => e.seq)).toEqual([2]);
  });
});
