/**
 * The audit trail: one JSON line per decision (allow, deny, or reject before a decision could be made).
 *
 * - Names only: never a body, a header value, a query string or a secret.
 * - Written in order, never dropped silently: a write error is reported on stderr once and counted.
 */
import { createWriteStream } from 'node:fs';
import type { Writable } from 'node:stream';
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
  const stream: Writable = target === '-' ? process.stdout : createWriteStream(target, { flags: 'a', mode: 0o600 });
  let failed = false;
  stream.on('error', (err: Error) => {
    if (!failed) onError(err);
    failed = true;
  });
  // The lines of one event-loop turn leave in one write: one thread-pool round trip per turn, not per request.
  let corked = false;
  const flush = (): void => {
    corked = false;
    stream.uncork();
  };
  return {
    write(event) {
      if (!corked) {
        corked = true;
        stream.cork();
        setImmediate(flush);
      }
      stream.write(`${JSON.stringify(event)}\n`);
    },
    close() {
      if (corked) flush();
      if (target === '-') return Promise.resolve();
      return new Promise((resolve) => stream.end(() => resolve()));
    },
  };
}
