/**
 * Empties the audit spool into the Console: `POST /api/v1/defenders/audit` with batches of at most 500 events
 * and AUDIT_BATCH_MAX_BYTES.
 *
 * - Only synced events are sent (see audit-spool.ts), oldest first; the spool drops them once the Console's
 *   `ackedSeq` covers them. A lost answer means the batch is sent again: the Console stores (Defender, seq) once.
 * - While the Console is away, retries back off (0.5 s → 30 s, jittered); `nudge()` (the policy stream came back)
 *   retries at once. The outage is logged once, and the recovery once.
 * - Events are fitted to the wire contract's limits (a 60 kB request path is cut, never makes the batch
 *   invalid), and a batch to AUDIT_BATCH_MAX_BYTES (500 events with 8 KiB paths would be over the Console's body
 *   limit): a batch the Console would refuse would block the spool forever.
 */
import { ACTIONS } from '../shared/docker/route-table.js';
import { AUDIT_BATCH_MAX_BYTES, auditAck, auditEventWire, type AuditAck, type AuditEventWire } from '../shared/wire/defender-console.js';
import type { SpooledEvent, AuditSpool } from './audit-spool.js';
import { Backoff } from './backoff.js';
import type { Logger } from './log.js';

export const AUDIT_BATCH = 500;

const clip = (s: string, max: number): string => (s.length > max ? s.slice(0, max) : s);
const clipOrNull = (s: string | null, max: number): string | null => (s === null ? null : clip(s, max));
const KNOWN_ACTIONS = new Set(ACTIONS);

/** One spooled event as the wire contract takes it. */
export function toWireEvent(e: SpooledEvent): AuditEventWire {
  const wire: AuditEventWire = {
    seq: e.seq,
    time: clip(String(e.time), 40),
    user: clipOrNull(e.user ?? null, 256),
    groups: (e.groups ?? []).slice(0, 256).map((g) => clip(String(g), 256)),
    host: clip(String(e.host), 253),
    action: KNOWN_ACTIONS.has(e.action) ? e.action : 'unknown',
    method: clip(String(e.method ?? ''), 16),
    path: clip(String(e.path ?? ''), 8192),
    decision: e.decision === 'allow' || e.decision === 'deny' ? e.decision : 'reject',
    rule: clipOrNull(e.rule ?? null, 200),
    status: Number.isInteger(e.status) ? e.status : null,
    client: clipOrNull(e.client ?? null, 128),
    ...(e.reason !== undefined ? { reason: clip(String(e.reason), 1024) } : {}),
    ...(e.secrets !== undefined ? { secrets: { rules: e.secrets.rules.slice(0, 100), names: e.secrets.names.slice(0, 1000) } } : {}),
  };
  const checked = auditEventWire.safeParse(wire);
  if (checked.success) return checked.data;
  // Never block the spool on one event: send what certainly fits, saying so.
  return { ...wire, user: null, groups: [], rule: null, client: null, reason: 'this audit event could not be encoded for the Console' };
}

/** The oldest of `pending` whose wire form fits AUDIT_BATCH_MAX_BYTES together (at least one). */
function fitBatch(pending: readonly SpooledEvent[]): { events: SpooledEvent[]; wire: AuditEventWire[] } {
  const wire: AuditEventWire[] = [];
  let bytes = 0;
  for (const e of pending) {
    const w = toWireEvent(e);
    bytes += Buffer.byteLength(JSON.stringify(w)) + 1;
    if (wire.length > 0 && bytes > AUDIT_BATCH_MAX_BYTES) break;
    wire.push(w);
  }
  return { events: pending.slice(0, wire.length), wire };
}

export type PostAudit = (events: AuditEventWire[]) => Promise<{ status: number; body: unknown }>;

export interface AuditUpload {
  /** Retry now (the Console is back). */
  nudge(): void;
  /** Stops after the batch in flight. */
  stop(): Promise<void>;
}

export function startAuditUpload(spool: AuditSpool, post: PostAudit, log: Logger, backoff = new Backoff()): AuditUpload {
  let stopped = false;
  let wake: (() => void) | null = null;
  let idle = false; // sleeping until new events are synced (not backing off: new events must not shorten that)
  let synced = false;
  let outage = false;
  const sleep = (ms: number): Promise<void> =>
    new Promise((resolve) => {
      const timer = ms === Infinity ? null : setTimeout(done, ms);
      function done(): void {
        if (timer) clearTimeout(timer);
        wake = null;
        resolve();
      }
      wake = done;
    });
  spool.onSynced(() => {
    synced = true;
    if (idle) wake?.();
  });

  async function sendOne(): Promise<'sent' | 'idle' | 'failed'> {
    const pending = await spool.readPending(AUDIT_BATCH);
    if (pending.length === 0) return 'idle';
    const { events, wire } = fitBatch(pending);
    let ack: AuditAck;
    try {
      const res = await post(wire);
      if (res.status !== 200 && res.status !== 201) throw new Error(`the Console answered ${res.status}`);
      const parsed = auditAck.safeParse(res.body);
      if (!parsed.success) throw new Error('the Console answered something that is not an AuditAck');
      ack = parsed.data;
    } catch (e) {
      if (!outage) log.warn('cannot deliver audit events to the Console; keeping them on disk and retrying', { error: (e as Error).message, backlog: spool.backlog });
      outage = true;
      return 'failed';
    }
    const last = events.at(-1)!.seq;
    if (ack.ackedSeq > spool.lastSeq) {
      // The Console knows seqs this Defender never wrote: its state directory was reset while the Console kept the
      // old enrolment's audit. Those events would be taken for duplicates; say so loudly.
      log.error('the Console already has audit events with higher numbers for this host (was the state directory reset?); it may ignore events up to its seq', { consoleSeq: ack.ackedSeq, ourSeq: spool.lastSeq });
    }
    await spool.ack(ack.ackedSeq);
    if (ack.ackedSeq < events[0]!.seq) {
      if (!outage) log.warn('the Console did not acknowledge an audit batch; retrying', { from: events[0]!.seq, to: last, ackedSeq: ack.ackedSeq });
      outage = true;
      return 'failed';
    }
    if (outage) log.info('audit delivery to the Console resumed', { backlog: spool.backlog });
    outage = false;
    return 'sent';
  }

  const loop = (async () => {
    while (!stopped) {
      let result: 'sent' | 'idle' | 'failed';
      synced = false;
      try {
        result = await sendOne();
      } catch (e) {
        log.error('cannot read the audit spool', { error: (e as Error).message });
        result = 'failed';
      }
      if (stopped) break;
      if (result === 'sent') backoff.reset();
      else if (result === 'idle') {
        if (synced) continue; // synced while we were reading
        idle = true;
        await sleep(Infinity);
        idle = false;
      } else await sleep(backoff.next());
    }
  })();

  return {
    nudge() {
      backoff.reset();
      wake?.();
    },
    async stop() {
      stopped = true;
      wake?.();
      // A batch in flight may wait for its answer up to its timeout; shutdown does not. It is resent next start.
      await Promise.race([loop, new Promise((resolve) => setTimeout(resolve, 2000).unref())]);
    },
  };
}
