/**
 * Keeps a Console-managed Defender's policy current: the long-lived `GET /api/v1/defenders/policy?since=N`
 * stream, and `POST /api/v1/defenders/heartbeat`.
 *
 * - `since` is the version enforced now (0 with none), so the Console sends a snapshot only when it has a newer
 *   one (resync by version after any gap); then one per change.
 * - Every line is validated against the wire contract. A line that does not parse means the stream cannot be
 *   trusted to be in step: it is logged, the connection dropped and opened again.
 * - No line (snapshot or heartbeat, the Console sends one every 15 s) for 45 s → the connection is dead, even if
 *   TCP has not noticed: dropped and opened again.
 * - Reconnects back off exponentially with jitter (0.5 s → 30 s); a successful connection resets it.
 * - A Console heartbeat with an older version than ours means the Console went back (a restore): we ask again
 *   from 0 so that its policy, not a newer-looking one it no longer has, is enforced. A newer version announced
 *   twice without its snapshot also makes us ask again.
 * - Heartbeats every 10 s and right after a snapshot was applied, so the Console shows the version in force.
 * - Losing and regaining the Console is logged once each, not per attempt.
 * - `reconnect()` replaces the stream at once (no backoff, nothing logged as lost): after the client certificate
 *   was renewed, so the Console sees the new one.
 */
import type { DefenderStatus, PolicySnapshot } from '../shared/wire/defender-console.js';
import { Backoff } from './backoff.js';
import type { ConsoleLink } from './console-link.js';
import type { Logger } from './log.js';
import { NdjsonLines, parsePolicyLine } from './ndjson-lines.js';

export interface PolicySyncOptions {
  readonly link: ConsoleLink;
  readonly log: Logger;
  /** The version enforced now (0 with none). */
  version(): number;
  /** Applies a snapshot (atomically); throws if it cannot, and the old policy stays. */
  apply(snapshot: PolicySnapshot): Promise<void>;
  /** What the heartbeat reports. */
  status(): DefenderStatus;
  /** The stream is up (the Console is reachable again). */
  onConnected?(): void;
  /** Every heartbeat tick (retry work that waits for it). */
  onTick?(): void;
  readonly idleTimeoutMs?: number;
  readonly heartbeatMs?: number;
  readonly backoff?: Backoff;
}

export interface PolicySync {
  /** Sends a heartbeat now (after a snapshot). */
  heartbeat(): void;
  /** Drops the stream and opens a new one now (new connection, current client certificate). */
  reconnect(): void;
  stop(): void;
}

export function startPolicySync(opts: PolicySyncOptions): PolicySync {
  const { link, log } = opts;
  const idleTimeoutMs = opts.idleTimeoutMs ?? 45_000;
  const backoff = opts.backoff ?? new Backoff();
  let stopped = false;
  let abortCurrent: (() => void) | null = null;
  let reconnectTimer: NodeJS.Timeout | null = null;
  let connected = false;
  let lostLogged = false;
  let forceSince: number | null = null;
  let heartbeatFailing = false;
  /** Snapshots are applied one after the other, in arrival order, across reconnects too. */
  let queue: Promise<void> = Promise.resolve();
  /** Bumped by every connect: an attempt overtaken by `reconnect()` drops what it opened. */
  let attempt = 0;

  const heartbeat = (): void => {
    if (stopped) return;
    void link
      .send('POST', '/api/v1/defenders/heartbeat', opts.status(), 10_000)
      .then((res) => {
        if (res.status >= 300) throw new Error(`the Console answered ${res.status}`);
      })
      .then(
        () => {
          heartbeatFailing = false;
        },
        (e: Error) => {
          if (!heartbeatFailing && connected) log.warn('heartbeat to the Console failed', { error: e.message });
          heartbeatFailing = true;
        },
      );
  };
  const heartbeatTimer = setInterval(() => {
    opts.onTick?.();
    heartbeat();
  }, opts.heartbeatMs ?? 10_000);

  function lost(reason: string): void {
    if (connected || !lostLogged) log.warn('lost the Console connection; enforcing the last policy and reconnecting', { error: reason, version: opts.version() });
    connected = false;
    lostLogged = true;
  }

  function scheduleReconnect(reason: string): void {
    abortCurrent = null;
    if (stopped || reconnectTimer) return;
    lost(reason);
    const delay = backoff.next();
    reconnectTimer = setTimeout(() => {
      reconnectTimer = null;
      void connect();
    }, delay);
  }

  async function connect(): Promise<void> {
    if (stopped) return;
    const mine = ++attempt;
    const since = forceSince ?? opts.version();
    forceSince = null;
    let stream: Awaited<ReturnType<ConsoleLink['openStream']>>;
    try {
      stream = await link.openStream(`/api/v1/defenders/policy?since=${since}`, { accept: 'application/x-ndjson' });
    } catch (e) {
      // A server that is not the Console (a certificate without its mark, a key that is not the pinned one) is worth
      // an error at every attempt: someone may be standing in for it. Other failures are logged once (lost()).
      const code = (e as NodeJS.ErrnoException).code;
      if (code === 'ERR_DRAWBRIDGE_NOT_CONSOLE' || code === 'ERR_DRAWBRIDGE_PIN_MISMATCH') {
        log.error('refusing a server that is not the Console; enforcing the last policy', { console: link.url, error: (e as Error).message });
      }
      if (mine === attempt) scheduleReconnect((e as Error).message);
      return;
    }
    const { res, abort } = stream;
    if (stopped || mine !== attempt) {
      abort();
      return;
    }
    if (res.statusCode !== 200) {
      let text = '';
      res.setEncoding('utf8').on('data', (c: string) => (text += c.slice(0, 500)));
      res.on('end', () => {
        const message = /"message"\s*:\s*"([^"]*)"/.exec(text)?.[1] ?? text.slice(0, 200);
        log.error('the Console refused the policy stream', { status: res.statusCode, error: message });
        scheduleReconnect(`status ${res.statusCode}`);
      });
      res.on('error', () => undefined);
      return;
    }
    let ended = false;
    const end = (reason: string): void => {
      if (ended) return;
      ended = true;
      clearTimeout(idle);
      abort();
      scheduleReconnect(reason);
    };
    abortCurrent = () => {
      ended = true;
      clearTimeout(idle);
      abort();
    };
    let idle = setTimeout(() => end(`no line from the Console for ${idleTimeoutMs / 1000} s`), idleTimeoutMs);
    backoff.reset();
    if (!connected) {
      log.info(lostLogged ? 'reconnected to the Console' : 'connected to the Console', { console: link.url, since });
      connected = true;
    }
    opts.onConnected?.();
    heartbeat();

    const lines = new NdjsonLines();
    let newerAnnounced = 0;
    let received = since; // the newest version this connection delivered (applied a moment later, in order)
    res.on('data', (chunk: Buffer) => {
      if (ended) return;
      let texts: string[];
      try {
        texts = lines.push(chunk);
      } catch (e) {
        log.error('invalid policy stream from the Console; reconnecting', { error: (e as Error).message });
        end('invalid line');
        return;
      }
      for (const text of texts) {
        let line;
        try {
          line = parsePolicyLine(text);
        } catch (e) {
          log.error('invalid policy stream from the Console; reconnecting', { error: (e as Error).message });
          end('invalid line');
          return;
        }
        clearTimeout(idle);
        idle = setTimeout(() => end(`no line from the Console for ${idleTimeoutMs / 1000} s`), idleTimeoutMs);
        if (line.type === 'snapshot') {
          newerAnnounced = 0;
          const snapshot = line.snapshot;
          received = snapshot.version;
          queue = queue.then(async () => {
            try {
              await opts.apply(snapshot);
              heartbeat();
            } catch (e) {
              log.error('cannot apply the policy snapshot; keeping the last one', { version: snapshot.version, error: (e as Error).message });
            }
          });
        } else {
          const ours = Math.max(received, opts.version());
          if (line.version < ours && forceSince === null) {
            log.warn('the Console is at an older policy version than this Defender (restored?); asking it for its policy', { console: line.version, ours });
            forceSince = 0;
            end('older version');
            return;
          }
          if (line.version > ours && ++newerAnnounced >= 2) {
            log.warn('the Console announces a newer policy version without sending it; asking again', { console: line.version, ours });
            end('out of step');
            return;
          }
        }
      }
    });
    res.on('end', () => end('the Console closed the stream'));
    res.on('aborted', () => end('the connection was cut'));
    res.on('error', (e) => end(e.message));
    res.on('close', () => end('the connection closed'));
  }

  void connect();
  return {
    heartbeat,
    reconnect() {
      if (stopped) return;
      abortCurrent?.();
      abortCurrent = null;
      if (reconnectTimer) clearTimeout(reconnectTimer);
      reconnectTimer = null;
      void connect();
    },
    stop() {
      stopped = true;
      clearInterval(heartbeatTimer);
      if (reconnectTimer) clearTimeout(reconnectTimer);
      abortCurrent?.();
    },
  };
}
