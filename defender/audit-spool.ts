/**
 * The audit trail of a Console-managed Defender: an on-disk spool that the uploader (audit-upload.ts) empties into
 * the Console. It is an `AuditLog`, so request handling writes to it exactly as to the local audit file.
 *
 * - Every event gets the next `seq` (1, 2, 3…). Seqs never repeat, across restarts and crashes: the next seq
 *   continues after the highest one on disk or acknowledged, whichever is higher. The Console stores each
 *   (Defender, seq) once, so resending after a lost answer or a crash duplicates nothing.
 * - Events are JSON lines appended to segment files `audit/<first seq>.jsonl`; a batch of lines is written and
 *   fdatasync'ed together, at most `flushMs` after the first event of the batch (or at once at `flushEvents`).
 *   A crash can lose only that last unsynced batch, and those seqs are then never sent: only synced events are
 *   uploaded, so a seq the Console has is always on disk (or acknowledged) and never reused.
 * - `ack(seq)` records the Console's `ackedSeq` (atomically, in `audit/acked`) and deletes the segments it
 *   covers entirely. A torn last line (crash in the middle of a write) is cut off when the spool is opened.
 * - A write error (disk full) is reported once and retried; events are kept in memory meanwhile, never dropped
 *   silently.
 */
import { closeSync, existsSync, ftruncateSync, fstatSync, openSync, readdirSync, readFileSync, readSync, rmSync } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import type { AuditEvent, AuditLog } from './audit-log.js';
import { ensurePrivateDir, syncDir, writeFileAtomic } from './fs-atomic.js';

export interface SpooledEvent extends AuditEvent {
  readonly seq: number;
}

export interface AuditSpoolOptions {
  /** Longest time an event waits in memory before its batch is written and synced. */
  readonly flushMs?: number;
  /** A batch this large is written at once. */
  readonly flushEvents?: number;
  /** A new segment file starts once the current one is this large. */
  readonly segmentBytes?: number;
  readonly onError?: (message: string) => void;
}

export interface AuditSpool extends AuditLog {
  /** The highest seq handed out. */
  readonly lastSeq: number;
  /** The highest seq written and synced. */
  readonly syncedSeq: number;
  /** The highest seq the Console acknowledged. */
  readonly ackedSeq: number;
  /** Events not acknowledged yet (synced or not). */
  readonly backlog: number;
  /** Writes and syncs what is buffered. */
  flush(): Promise<void>;
  /** Up to `max` synced, unacknowledged events, in seq order. */
  readPending(max: number): Promise<SpooledEvent[]>;
  /** The Console has everything up to `seq` (values beyond what was synced are clamped). */
  ack(seq: number): Promise<void>;
  /** Called after each sync that made new events available. */
  onSynced(listener: () => void): void;
}

const ACKED_FILE = 'acked';
const SEGMENT = /^(\d{16})\.jsonl$/;
const segmentName = (firstSeq: number): string => `${String(firstSeq).padStart(16, '0')}.jsonl`;

interface Segment {
  readonly name: string;
  readonly firstSeq: number;
}

function listSegments(dir: string): Segment[] {
  return readdirSync(dir)
    .map((name) => SEGMENT.exec(name))
    .filter((m): m is RegExpExecArray => m !== null)
    .map((m) => ({ name: m[0], firstSeq: Number(m[1]) }))
    .sort((a, b) => a.firstSeq - b.firstSeq);
}

function readAcked(dir: string): number {
  const path = join(dir, ACKED_FILE);
  if (!existsSync(path)) return 0;
  try {
    const value = (JSON.parse(readFileSync(path, 'utf8')) as { ackedSeq?: unknown }).ackedSeq;
    return typeof value === 'number' && Number.isSafeInteger(value) && value >= 0 ? value : 0;
  } catch {
    return 0; // unreadable: everything is resent, and the Console drops what it has
  }
}

function parseLine(line: string): SpooledEvent | null {
  try {
    const event = JSON.parse(line) as SpooledEvent;
    return typeof event === 'object' && event !== null && Number.isSafeInteger(event.seq) && event.seq > 0 ? event : null;
  } catch {
    return null;
  }
}

/**
 * Cuts a torn last line off `path` and returns the highest seq in it (0 when none). Reads the file whole: a
 * segment is at most `segmentBytes` plus one batch.
 */
function repairSegment(path: string): { lastSeq: number; size: number } {
  const fd = openSync(path, 'r+');
  try {
    const size = fstatSync(fd).size;
    const data = Buffer.alloc(size);
    let read = 0;
    while (read < size) read += readSync(fd, data, read, size - read, read);
    const end = data.lastIndexOf(0x0a) + 1;
    if (end < size) ftruncateSync(fd, end);
    let lastSeq = 0;
    for (const line of data.subarray(0, end).toString('utf8').split('\n')) {
      const event = line ? parseLine(line) : null;
      if (event && event.seq > lastSeq) lastSeq = event.seq;
    }
    return { lastSeq, size: end };
  } finally {
    closeSync(fd);
  }
}

/** Opens (or creates) the spool in `dir`. Synchronous: it runs once at start, before any request. */
export function openAuditSpool(dir: string, opts: AuditSpoolOptions = {}): AuditSpool {
  const flushMs = opts.flushMs ?? 20;
  const flushEvents = opts.flushEvents ?? 500;
  const segmentBytes = opts.segmentBytes ?? 1024 * 1024;
  ensurePrivateDir(dir);

  let ackedSeq = readAcked(dir);
  const segments = listSegments(dir);
  let lastSeq = ackedSeq;
  let currentSize = 0;
  const last = segments.at(-1);
  if (last) {
    const repaired = repairSegment(join(dir, last.name));
    currentSize = repaired.size;
    lastSeq = Math.max(lastSeq, repaired.lastSeq, last.firstSeq - 1);
  }
  let syncedSeq = lastSeq;

  let current: { segment: Segment; handle: FileHandle | null } | null = last ? { segment: last, handle: null } : null;
  let buffer: string[] = [];
  let bufferFirstSeq = 0;
  let timer: NodeJS.Timeout | null = null;
  let chain: Promise<void> = Promise.resolve();
  let failed = false;
  let closed = false;
  /** Where the first unacknowledged event starts, to avoid rescanning acknowledged lines. */
  let cursor: { segment: string; position: number } | null = null;
  const listeners: (() => void)[] = [];

  const serial = <T>(task: () => Promise<T>): Promise<T> => {
    const run = chain.then(task);
    chain = run.then(
      () => undefined,
      () => undefined,
    );
    return run;
  };

  const schedule = (delay: number): void => {
    if (timer !== null || closed) return;
    timer = setTimeout(() => {
      timer = null;
      void flush();
    }, delay);
    timer.unref?.();
  };

  async function writeBatch(): Promise<void> {
    if (buffer.length === 0) return;
    const lines = buffer;
    const firstSeq = bufferFirstSeq;
    buffer = [];
    const data = Buffer.from(lines.join(''), 'utf8');
    try {
      if (current === null || currentSize >= segmentBytes) {
        await current?.handle?.close();
        current = { segment: { name: segmentName(firstSeq), firstSeq }, handle: null };
        currentSize = 0;
      }
      if (current.handle === null) {
        current.handle = await open(join(dir, current.segment.name), 'a', 0o600);
        if (currentSize === 0) syncDir(dir); // the new file's name must survive a crash too
      }
      await current.handle.write(data);
      await current.handle.datasync();
      currentSize += data.length;
      syncedSeq = firstSeq + lines.length - 1;
      failed = false;
    } catch (e) {
      // Roll a partial write back, so the retry does not glue half a line to the next one.
      await current?.handle?.truncate(currentSize).catch(() => undefined);
      buffer = [...lines, ...buffer]; // kept, retried
      bufferFirstSeq = firstSeq;
      if (!failed) opts.onError?.(`cannot write the audit spool in ${dir}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}; retrying`);
      failed = true;
      schedule(1000);
      return;
    }
    for (const l of listeners) l();
  }

  function flush(): Promise<void> {
    if (timer !== null) {
      clearTimeout(timer);
      timer = null;
    }
    return serial(writeBatch);
  }

  async function readPendingNow(max: number): Promise<SpooledEvent[]> {
    const out: SpooledEvent[] = [];
    const segs = listSegments(dir);
    const atCursor = cursor === null ? -1 : segs.findIndex((seg) => seg.name === cursor!.segment);
    let cursorMoved = false;
    for (let i = Math.max(atCursor, 0); i < segs.length && out.length < max; i++) {
      const seg = segs[i]!;
      const next = segs[i + 1];
      if (next && next.firstSeq - 1 <= ackedSeq) continue; // wholly acknowledged (deleted by the next ack)
      let position = i === atCursor ? cursor!.position : 0; // file offset of `carry`'s first byte
      let firstPending: number | null = null;
      const handle = await open(join(dir, seg.name), 'r');
      try {
        const chunk = Buffer.alloc(64 * 1024);
        let carry = Buffer.alloc(0);
        while (out.length < max) {
          const { bytesRead } = await handle.read(chunk, 0, chunk.length, position + carry.length);
          if (bytesRead === 0) break;
          const data = Buffer.concat([carry, chunk.subarray(0, bytesRead)]);
          let lineStart = 0;
          for (let nl = data.indexOf(0x0a); nl !== -1 && out.length < max; nl = data.indexOf(0x0a, lineStart)) {
            const event = parseLine(data.subarray(lineStart, nl).toString('utf8'));
            if (event === null) opts.onError?.(`skipping an unreadable line in the audit spool ${join(dir, seg.name)}`);
            else if (event.seq > ackedSeq && event.seq <= syncedSeq) {
              firstPending ??= position + lineStart;
              out.push(event);
            }
            lineStart = nl + 1;
          }
          position += lineStart;
          carry = Buffer.from(data.subarray(lineStart));
        }
      } finally {
        await handle.close();
      }
      // Lines before the first pending one are acknowledged for good: the next read starts there.
      if (firstPending !== null && !cursorMoved) {
        cursor = { segment: seg.name, position: firstPending };
        cursorMoved = true;
      }
    }
    return out;
  }

  async function ackNow(seq: number): Promise<void> {
    const upTo = Math.min(seq, syncedSeq);
    if (upTo <= ackedSeq) return;
    writeFileAtomic(join(dir, ACKED_FILE), JSON.stringify({ ackedSeq: upTo }));
    ackedSeq = upTo;
    const segs = listSegments(dir);
    let removed = false;
    for (const [i, seg] of segs.entries()) {
      const isCurrent = current?.segment.name === seg.name;
      const lastInSeg = i + 1 < segs.length ? segs[i + 1]!.firstSeq - 1 : isCurrent ? syncedSeq : -1;
      if (lastInSeg < 0 || lastInSeg > ackedSeq) continue;
      if (isCurrent) {
        if (buffer.length > 0) continue; // its next batch is on its way
        await current!.handle?.close();
        current = null;
        currentSize = 0;
      }
      rmSync(join(dir, seg.name), { force: true });
      if (cursor?.segment === seg.name) cursor = null;
      removed = true;
    }
    if (removed) syncDir(dir);
  }

  return {
    get lastSeq() {
      return lastSeq;
    },
    get syncedSeq() {
      return syncedSeq;
    },
    get ackedSeq() {
      return ackedSeq;
    },
    get backlog() {
      return lastSeq - ackedSeq;
    },
    write(event) {
      if (closed) return;
      const seq = ++lastSeq;
      if (buffer.length === 0) bufferFirstSeq = seq;
      buffer.push(`${JSON.stringify({ seq, ...event })}\n`);
      if (buffer.length >= flushEvents) void flush();
      else schedule(flushMs);
    },
    flush,
    readPending: (max) => serial(() => readPendingNow(max)),
    ack: (seq) => serial(() => ackNow(seq)),
    onSynced(listener) {
      listeners.push(listener);
    },
    async close() {
      await flush();
      closed = true;
      await serial(async () => {
        await current?.handle?.close();
        if (current) current.handle = null;
      });
    },
  };
}
