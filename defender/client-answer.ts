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
 * - `write` returns false once a megabyte is waiting for the client: the caller pauses its source until `onDrain`.
 */
import type { TLSSocket } from 'node:tls';
import { answerHead } from './http-head.js';
import type { IncomingRequest } from './incoming-request.js';

const HIGH_WATER = 1024 * 1024;
/** Pieces up to this size are copied into one buffer; larger ones are written corked. */
const COPY_LIMIT = 16 * 1024;
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
  private outBytes = 0;
  private flushQueued = false;
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

  /** A piece of the body; false: wait for `onDrain` before writing more. */
  write(chunk: Buffer): boolean {
    if (this.ended) return false;
    if (!this.headersSent) throw new Error('the answer body came before its head');
    if (chunk.length > 0 && this.framing !== 'none') {
      if (this.framing === 'chunked') this.queue(Buffer.from(`${chunk.length.toString(16)}\r\n`, 'latin1'), chunk, CRLF);
      else this.queue(chunk);
    }
    return this.socket.writableLength + this.outBytes < HIGH_WATER;
  }

  end(chunk?: Buffer): void {
    if (this.ended) return;
    if (chunk) this.write(chunk);
    if (this.framing === 'chunked') this.queue(LAST_CHUNK);
    this.ended = true;
    this.flush();
    this.done(this.closeAfter);
  }

  /** Sends the head now (a stream whose body has not started). */
  flushHeaders(): void {
    if (!this.ended) this.flush();
  }

  /** Gives up: the connection is cut (a failure after the head left). */
  destroy(): void {
    this.ended = true;
    this.out = [];
    this.outBytes = 0;
    this.socket.destroy();
  }

  onDrain(cb: () => void): void {
    this.flush();
    if (this.socket.writableNeedDrain) this.socket.once('drain', cb);
    else queueMicrotask(cb);
  }

  /** `cb` runs if the client goes away before the answer was written. */
  onClientGone(cb: () => void): void {
    this.onGone = cb;
  }

  /** From the connection: the client is gone. */
  clientGone(): void {
    if (this.ended) return;
    this.ended = true;
    this.out = [];
    this.outBytes = 0;
    this.onGone?.();
  }

  private queue(...pieces: Buffer[]): void {
    for (const p of pieces) {
      this.out.push(p);
      this.outBytes += p.length;
    }
    if (!this.flushQueued) {
      this.flushQueued = true;
      process.nextTick(this.flushLater);
    }
  }

  private readonly flushLater = (): void => {
    this.flushQueued = false;
    this.flush();
  };

  private flush(): void {
    const out = this.out;
    if (out.length === 0) return;
    const size = this.outBytes;
    this.out = [];
    this.outBytes = 0;
    if (!this.socket.writable) return;
    if (out.length === 1) this.socket.write(out[0]!);
    else if (size <= COPY_LIMIT) this.socket.write(Buffer.concat(out, size));
    else {
      this.socket.cork();
      for (const piece of out) this.socket.write(piece);
      this.socket.uncork();
    }
  }
}
