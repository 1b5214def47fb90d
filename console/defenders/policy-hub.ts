/**
 * The policy push hub: every connected Defender holds one long-lived NDJSON stream
 * (`GET /api/v1/defenders/policy?since=N`), and every policy version reaches all of them.
 *
 * - On connect: a snapshot at once when the Console's version is newer than `since`; then one snapshot per new
 *   version, and a heartbeat line every 15 s (with the Console's version, so a Defender can tell it is current).
 * - One subscription to the policy clock for the whole hub (taken with the first stream, dropped with the last);
 *   bursts of changes are coalesced and each version is read and encoded once (policy-snapshot.ts).
 * - A slow Defender never makes the Console buffer a backlog: while its socket is not drained it gets nothing,
 *   and once drained it gets only the newest snapshot (snapshots are whole, so skipping is safe).
 * - A stream whose client certificate has been revoked, or whose Defender was deleted, is ended at the next
 *   version; the Defender cannot reconnect with that certificate.
 * - "Connected" means at least one open stream; `last_seen` is written on connect and on close.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { ConsoleContext } from '../context.js';
import { consoleErrors } from '../errors.js';
import { DefenderStore } from './defender-store.js';
import { EncodedPolicy } from './policy-snapshot.js';

export const HEARTBEAT_MS = 15_000;

interface Stream {
  readonly hostName: string;
  readonly hostKey: string;
  readonly serial: string;
  readonly res: ServerResponse;
  listenerJson: string;
  /** The version of the last snapshot written (or the `since` the Defender came with). */
  sentVersion: number;
  /** Waiting for 'drain': write nothing until then. */
  blocked: boolean;
}

/** Node may print a serial without its leading zero nibble; compare serials without leading zeros. */
const serialKey = (serial: string): string => serial.toLowerCase().replace(/^0+/, '');

export class PolicyHub {
  private readonly streams = new Set<Stream>();
  private readonly byHost = new Map<string, Set<Stream>>();
  private readonly defenders: DefenderStore;
  private policy: EncodedPolicy | null = null;
  private revokedKeys: ReadonlySet<string> = new Set();
  private unsubscribe: (() => void) | null = null;
  private heartbeat: NodeJS.Timeout | null = null;
  private refreshQueued = false;

  constructor(
    private readonly ctx: ConsoleContext,
    private readonly heartbeatMs = HEARTBEAT_MS,
  ) {
    this.defenders = new DefenderStore(ctx.db, ctx.policy);
  }

  isConnected(hostName: string): boolean {
    return (this.byHost.get(hostName.toLowerCase())?.size ?? 0) > 0;
  }

  get streamCount(): number {
    return this.streams.size;
  }

  /** Bytes written to streams and not yet taken by their sockets (bounded by one snapshot per slow stream). */
  get bufferedBytes(): number {
    let n = 0;
    for (const s of this.streams) n += s.res.writableLength;
    return n;
  }

  /** Starts a Defender's stream on `res` (the caller returns RAW). */
  open(principal: { hostName: string; serial: string }, since: number, req: IncomingMessage, res: ServerResponse): void {
    const listenerJson = this.defenders.listenerJson(principal.hostName);
    if (listenerJson === null) throw consoleErrors.not_found(`the Defender '${principal.hostName}' is not registered; enrol it again`);
    const policy = this.current();

    req.socket.setNoDelay(true);
    req.socket.setKeepAlive(true, 30_000);
    res.writeHead(200, { 'Content-Type': 'application/x-ndjson', 'Cache-Control': 'no-store', 'X-Accel-Buffering': 'no' });
    res.flushHeaders();

    const hostKey = principal.hostName.toLowerCase();
    const stream: Stream = { hostName: principal.hostName, hostKey, serial: serialKey(principal.serial), res, listenerJson, sentVersion: since, blocked: false };
    this.streams.add(stream);
    let forHost = this.byHost.get(hostKey);
    if (!forHost) this.byHost.set(hostKey, (forHost = new Set()));
    forHost.add(stream);
    res.on('close', () => this.close(stream));
    this.start();
    this.defenders.touch(principal.hostName);
    this.ctx.log.info('defender connected', { host: principal.hostName, since, version: policy.version, streams: this.streams.size });
    if (policy.version > since) this.send(stream, policy);
  }

  /** The encoded policy of the Console's current version (read again only when the version moved). */
  private current(): EncodedPolicy {
    const version = this.ctx.policy.current();
    if (this.policy?.version !== version) {
      this.policy = EncodedPolicy.read(this.ctx);
      this.revokedKeys = new Set([...this.policy.revoked].map(serialKey));
    }
    return this.policy;
  }

  private start(): void {
    if (this.unsubscribe) return;
    this.unsubscribe = this.ctx.policy.onChange(() => this.queueRefresh());
    this.heartbeat = setInterval(() => this.beat(), this.heartbeatMs);
    this.heartbeat.unref();
  }

  private stopIfIdle(): void {
    if (this.streams.size > 0) return;
    this.unsubscribe?.();
    this.unsubscribe = null;
    if (this.heartbeat) clearInterval(this.heartbeat);
    this.heartbeat = null;
    this.policy = null; // nobody to serve: do not keep the last encoding alive
  }

  private queueRefresh(): void {
    if (this.refreshQueued) return;
    this.refreshQueued = true;
    setImmediate(() => {
      this.refreshQueued = false;
      this.refresh();
    });
  }

  /** Brings every stream to the current version (or ends it when its Defender may no longer be served). */
  private refresh(): EncodedPolicy | null {
    if (this.streams.size === 0) return null;
    let policy: EncodedPolicy;
    try {
      policy = this.current();
    } catch (e) {
      this.ctx.log.error('could not read the policy for the push', { error: (e as Error).message });
      return null;
    }
    for (const stream of [...this.streams]) {
      const listenerJson = policy.listeners.get(stream.hostKey);
      if (listenerJson === undefined || this.revokedKeys.has(stream.serial)) {
        this.ctx.log.info('ending a policy stream', { host: stream.hostName, reason: listenerJson === undefined ? 'the Defender was deleted' : 'its certificate was revoked' });
        if (this.writable(stream)) stream.res.end();
        continue;
      }
      stream.listenerJson = listenerJson;
      if (policy.version > stream.sentVersion) this.send(stream, policy);
    }
    return policy;
  }

  private beat(): void {
    const policy = this.refresh();
    if (!policy) return;
    const line = policy.heartbeatLine();
    for (const stream of this.streams) if (!stream.blocked && this.writable(stream)) stream.res.write(line);
  }

  private writable(stream: Stream): boolean {
    return !stream.res.writableEnded && !stream.res.destroyed;
  }

  private send(stream: Stream, policy: EncodedPolicy): void {
    if (stream.blocked || !this.writable(stream)) return;
    stream.sentVersion = policy.version;
    if (stream.res.write(policy.snapshotLine(stream.hostName, stream.listenerJson))) return;
    stream.blocked = true;
    stream.res.once('drain', () => {
      stream.blocked = false;
      if (this.policy && this.policy.version > stream.sentVersion) this.send(stream, this.policy);
    });
  }

  private close(stream: Stream): void {
    if (!this.streams.delete(stream)) return;
    const forHost = this.byHost.get(stream.hostKey);
    forHost?.delete(stream);
    if (forHost?.size === 0) this.byHost.delete(stream.hostKey);
    this.stopIfIdle();
    // The Console may be shutting down (database already closed): last_seen is best effort then.
    if (!this.ctx.db.open) return;
    try {
      this.defenders.touch(stream.hostName);
      this.ctx.log.info('defender disconnected', { host: stream.hostName, streams: this.streams.size });
    } catch (e) {
      this.ctx.log.error('could not record a Defender disconnect', { host: stream.hostName, error: (e as Error).message });
    }
  }
}
