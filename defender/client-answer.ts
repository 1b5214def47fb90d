/**
 * The answer to one client request, written straight onto its TLS connection (no http.ServerResponse: its
 * machinery cost more CPU per request than the Defender's own work).
 *
 * - Framing follows the head it is given: a Content-Length is kept and the body sent as is; no length → chunked
 *   (close-delimited for an HTTP/1.0 client); HEAD, 1xx, 204 and 304 answers carry no body whatever they declare.
 * - `Connection: close` when the caller asks, the client asked, the framing needs it or the listener is closing;
 *   the connection then closes once the answer is written (client-connection.ts keeps it readable long enough for
 *   the client to read the answer).
 * - What is written in one event-loop turn leaves in one socket write (one TLS record for most answers); the head
 *   waits for the first body bytes unless flushed (a stream whose first bytes are not there yet).
 * - One socket write at a time: what comes while one is under way waits here and leaves when it completed, large
 *   pieces on their own. Node's TLS socket copies everything written in one go (several pieces of a stream that
 *   queued in the socket, or a cork) into one new buffer before encrypting it: a tenth of the Defender's CPU on a
 *   `docker cp` of a gigabyte. What is left when the answer ends goes to the socket at once, so the next answer on
 *   the connection, or its end, always comes after it.
 * - `write` returns false once a megabyte is waiting for the client: the caller pauses its source until `onDrain`.
 * - Client connections run with TCP_NODELAY (server.ts): an answer leaves at once. Once an answer's body passed
 *   256 KiB it is bulk (a download, a long log): Nagle's algorithm is let merge its small writes while earlier ones
 *   are unacknowledged (dockerd writes `logs` in pieces of a few KiB; about a sixth more throughput on 1 KiB lines),
 *   and TCP_NODELAY is set again when the answer ends, which sends what Nagle held at once. Interactive streams
 *   (attach, exec) are hijacked connections that never get here.
 */
import type { TLSSocket } from 'node:tls';
import { answerHead } from './http-head.js';
import type { IncomingRequest } from './incoming-request.js';
import type { Release } from './read-buffers.js';

const HIGH_WATER = 1024 * 1024;
/** Body bytes after which an answer is bulk (see the header). */
const BULK_BYTES = 256 * 1024;
/** Waiting pieces are copied into one buffer up to this size; a larger piece leaves on its own. */
const COPY_LIMIT = 64 * 1024;
const CRLF = Buffer.from('\r\n', 'latin1');
const LAST_CHUNK = Buffer.from('0\r\n\r\n', 'latin1');

/** 'relay': chunks framed by dockerd, written as they come (chunk lines and the last chunk included). */
type Framing = 'none' | 'length' | 'chunked' | 'relay' | 'close';

export class ClientAnswer {
  /** The head was given (it may still wait for the first body bytes). */
  headersSent = false;
  /** Everything was written (or the answer was given up). */
  ended = false;
  private framing: Framing = 'none';
  private closeAfter = false;
  private out: Buffer[] = [];
  /** Beside each piece of `out`: how to give back the read buffer it lies in, once written (or null). */
  private outRelease: Array<Release | null> = [];
  private outBytes = 0;
  private flushQueued = false;
  /** A socket write of this answer has not completed yet. */
  private writing = false;
  private drainCb: (() => void) | null = null;
  private bodyBytes = 0;
  /** TCP_NODELAY was cleared for this (bulk) answer. */
  private nagle = false;
  private onGone: (() => void) | null = null;

  constructor(
    private readonly socket: TLSSocket,
    private readonly req: IncomingRequest,
    private readonly closing: () => boolean,
    /** Called once, when the answer is written: whether the connection closes after it. */
    private readonly done: (close: boolean) => void,
  ) {}

  /** Whether `writeHead(…, relayChunks)` can pass a body chunked by dockerd on as is (an HTTP/1.1 client). */
  get canRelayChunks(): boolean {
    return this.req.httpMinor >= 1;
  }

  /**
   * Throws (nothing written) on a head that could be split (http-head.ts). `relayChunks`: the body given to `write`
   * is already chunked (dockerd's own framing, relayed byte for byte) and `end` adds nothing.
   */
  writeHead(status: number, message: string, rawHeaders: readonly string[], close = false, relayChunks = false): void {
    if (this.headersSent) throw new Error('the answer head was already written');
    let hasLength = false;
    for (let i = 0; i < rawHeaders.length; i += 2) {
      if (rawHeaders[i]!.length === 14 && rawHeaders[i]!.toLowerCase() === 'content-length') hasLength = true;
    }
    let extra = '';
    if (this.req.method === 'HEAD' || status < 200 || status === 204 || status === 304) this.framing = 'none';
    else if (hasLength) this.framing = 'length';
    else if (this.req.httpMinor >= 1) {
      this.framing = relayChunks ? 'relay' : 'chunked';
      extra += 'Transfer-Encoding: chunked\r\n';
    } else {
      this.framing = 'close';
      close = true;
    }
    this.closeAfter = close || !this.req.keepAlive || this.closing();
    if (this.closeAfter) extra += 'Connection: close\r\n';
    else if (this.req.httpMinor === 0) extra += 'Connection: keep-alive\r\n';
    const head = Buffer.from(answerHead(status, message, rawHeaders, extra), 'latin1');
    this.headersSent = true;
    this.queue(head);
  }

  /**
   * A piece of the body; false: wait for `onDrain` before writing more. `release`: the piece lies in a read buffer
   * (read-buffers.ts), given back once the piece was written or dropped.
   */
  write(chunk: Buffer, release?: Release): boolean {
    if (!this.ended && !this.headersSent) throw new Error('the answer body came before its head');
    if (this.ended || chunk.length === 0 || this.framing === 'none') {
      release?.(); // nothing to write
      return !this.ended && this.waitingBytes < HIGH_WATER;
    }
    if (this.framing === 'chunked') {
      this.queue(Buffer.from(`${chunk.length.toString(16)}\r\n`, 'latin1'));
      this.queue(chunk, release);
      this.queue(CRLF);
    } else this.queue(chunk, release);
    this.bodyBytes += chunk.length;
    if (this.bodyBytes > BULK_BYTES && !this.nagle) {
      this.nagle = true;
      this.socket.setNoDelay(false);
    }
    return this.waitingBytes < HIGH_WATER;
  }

  end(chunk?: Buffer): void {
    if (this.ended) return;
    if (chunk) this.write(chunk);
    if (this.framing === 'chunked') this.queue(LAST_CHUNK);
    this.ended = true;
    this.flushAll();
    if (this.nagle) this.socket.setNoDelay(true);
    this.done(this.closeAfter);
  }

  /** Sends the head now (a stream whose body has not started). */
  flushHeaders(): void {
    if (!this.ended) this.flush();
  }

  /** Gives up: the connection is cut (a failure after the head left). */
  destroy(): void {
    this.ended = true;
    this.drop();
    this.socket.destroy();
  }

  onDrain(cb: () => void): void {
    this.flush();
    if (this.waitingBytes < HIGH_WATER) queueMicrotask(cb);
    else this.drainCb = cb;
  }

  /** `cb` runs if the client goes away before the answer was written. */
  onClientGone(cb: () => void): void {
    this.onGone = cb;
  }

  /** From the connection: the client is gone. */
  clientGone(): void {
    if (this.ended) return;
    this.ended = true;
    this.drop();
    this.onGone?.();
  }

  private queue(piece: Buffer, release: Release | null = null): void {
    this.out.push(piece);
    this.outRelease.push(release);
    this.outBytes += piece.length;
    if (!this.flushQueued) {
      this.flushQueued = true;
      process.nextTick(this.flushLater);
    }
  }

  private readonly flushLater = (): void => {
    this.flushQueued = false;
    this.flush();
  };

  private get waitingBytes(): number {
    return this.socket.writableLength + this.outBytes;
  }

  /** Writes what waits unless a write is under way: the first piece alone, or the small ones before it in one copy. */
  private flush(): void {
    const out = this.out;
    if (out.length === 0 || this.writing) return;
    if (!this.socket.writable) {
      this.drop();
      return;
    }
    const releases = this.outRelease;
    let n = 1;
    let size = out[0]!.length;
    while (n < out.length && size + out[n]!.length <= COPY_LIMIT) size += out[n++]!.length;
    const piece = n === 1 ? out[0]! : Buffer.concat(out.slice(0, n), size);
    let release: Release | null = null;
    if (n === 1) release = releases[0]!;
    else for (let i = 0; i < n; i++) releases[i]?.(); // copied
    this.out = n === out.length ? [] : out.slice(n);
    this.outRelease = n === releases.length ? [] : releases.slice(n);
    this.outBytes -= size;
    this.writing = true;
    // The callback also runs when the write failed or the socket was destroyed first.
    this.socket.write(
      piece,
      release === null
        ? this.written
        : () => {
            release();
            this.written();
          },
    );
  }

  /** Forgets what waits (the answer was given up or cannot be written any more). */
  private drop(): void {
    for (const release of this.outRelease) release?.();
    this.out = [];
    this.outRelease = [];
    this.outBytes = 0;
  }

  private readonly written = (): void => {
    this.writing = false;
    this.flush();
    const cb = this.drainCb;
    if (cb !== null && this.waitingBytes < HIGH_WATER) {
      this.drainCb = null;
      cb();
    }
  };

  /** Everything that waits goes to the socket now (the answer ended). */
  private flushAll(): void {
    const out = this.out;
    if (out.length === 0) return;
    // A piece written as it is is given back once written; copied ones at once.
    const release = out.length === 1 ? (this.outRelease[0] ?? null) : null;
    const all = out.length === 1 ? out[0]! : Buffer.concat(out, this.outBytes);
    if (release !== null) this.outRelease = [];
    this.drop(); // gives back what was copied (or cannot be written)
    if (this.socket.writable) this.socket.write(all, release ?? undefined);
    else release?.();
  }
}
