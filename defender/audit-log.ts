/**
 * The audit trail: one JSON line per decision (allow, deny, or reject before a decision could be made).
 *
 * - Names only: never a body, a header value, a query string or a secret.
 * - Written in order, never dropped silently: a write error is reported on stderr once.
 * - The lines of one event-loop turn leave in one write. To a file that write is synchronous (appending to the page
 *   cache takes microseconds; a thread-pool round trip per turn cost the Defender more CPU and context switches
 *   than the write itself), so a line is on disk before the Defender reads its next request.
 */
import { closeSync, openSync, writeSync } from 'node:fs';
import type { AuditEventWire } from '../shared/wire/defender-console.js';

/**
 * One decision, as the wire contract defines an audit event (the spool adds `seq`). `status` is the Defender's own
 * answer; null when the request went to dockerd.
 */
export type AuditEvent = Readonly<Omit<AuditEventWire, 'seq' | 'groups'>> & { readonly groups: readonly string[] };

export interface AuditLog {
  write(event: AuditEvent): void;
  close(): Promise<void>;
}

export function openAuditLog(target: string, onError: (err: Error) => void): AuditLog {
  let failed = false;
  const fail = (err: Error): void => {
    if (!failed) onError(err);
    failed = true;
  };
  let fd: number | null = null;
  if (target !== '-') {
    try {
      fd = openSync(target, 'a', 0o600);
    } catch (err) {
      fail(err as Error);
    }
  } else process.stdout.on('error', fail);
  let pending = '';
  let scheduled = false;
  const flush = (): void => {
    scheduled = false;
    if (pending === '') return;
    const data = Buffer.from(pending);
    pending = '';
    if (target === '-') {
      process.stdout.write(data);
      return;
    }
    if (fd === null) return;
    try {
      for (let off = 0; off < data.length; ) off += writeSync(fd, data, off);
    } catch (err) {
      fail(err as Error);
    }
  };
  return {
    write(event) {
      pending += `${JSON.stringify(event)}\n`;
      if (!scheduled) {
        scheduled = true;
        setImmediate(flush);
      }
    },
    close() {
      flush();
      if (fd !== null) {
        closeSync(fd);
        fd = null;
      }
      return Promise.resolve();
    },
  };
}
