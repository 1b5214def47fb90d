/**
 * One request read from a client connection (client-connection.ts): its head as parsed, and its body as the parser
 * de-frames it.
 *
 * - The body has one reader. Pieces that arrive before the reader is attached (a pipelined request waiting for its
 *   turn, a decision still being taken) are kept and handed over first, in order.
 * - The reader learns how the body ended: `end` when the parser saw all of it, `error` when it was cut short (the
 *   client closed) or the parser refused it half-way (`malformed`, only for a reader that can still answer it).
 * - `Expect: 100-continue` from an HTTP/1.1 client is answered when the body is first wanted (as Node's server does),
 *   never for a request refused before its body was read; an HTTP/1.0 client's is ignored (RFC 9110 §10.1.1).
 */
import type { TLSSocket } from 'node:tls';
import type { DrawbridgeError } from '../shared/errors/drawbridge-error.js';
import { retain, type Release } from './read-buffers.js';

export interface BodyReader {
  /** Valid during this call only (it may lie in a reused read buffer): `retain` it, or copy it, to keep it. */
  data(chunk: Buffer): void;
  /** The whole body was received. */
  end(): void;
  /** The body will not be complete: the client closed, or the connection failed. */
  error(err: Error): void;
  /**
   * The HTTP parser refused the body half-way. A reader that can still answer the request takes it (true); a
   * reader that already sent part of the body on (a stream) cannot, and the connection is cut instead.
   */
  malformed?(error: DrawbridgeError): boolean;
}

/** What the connection lends a request: the flow of bytes on its socket, and the 100-continue line. */
export interface RequestFlow {
  pause(req: IncomingRequest): void;
  resume(req: IncomingRequest): void;
  writeContinue(): void;
}

export class IncomingRequest {
  /** The parser saw the whole body. */
  complete = false;
  /** Its turn came (client-connection.ts runs requests one at a time, in order). */
  started = false;
  /** Bytes received and not yet handed to a reader. */
  bufferedBytes = 0;
  /** Pieces waiting for the reader, each kept from being read over (`retain`) until handed over. */
  private buffered: Array<{ readonly piece: Buffer; readonly release: Release }> = [];
  private reader: BodyReader | null = null;
  private failure: Error | null = null;
  private continued = false;

  constructor(
    readonly socket: TLSSocket,
    readonly method: string,
    /** The request target as received: path and query. */
    readonly url: string,
    /** name, value, name, value… as on the wire. */
    readonly rawHeaders: readonly string[],
    /** 1 or 0 (HTTP/1.1 or HTTP/1.0). */
    readonly httpMinor: number,
    readonly keepAlive: boolean,
    private readonly flow: RequestFlow,
  ) {}

  /** The first value of a header (names compare case-insensitively). */
  header(name: string): string | undefined {
    for (let i = 0; i < this.rawHeaders.length; i += 2) if (this.rawHeaders[i]!.toLowerCase() === name) return this.rawHeaders[i + 1];
    return undefined;
  }

  /** Attaches the body's one reader. */
  readBody(reader: BodyReader): void {
    if (this.reader) throw new Error('the request body already has a reader');
    this.reader = reader;
    if (this.httpMinor >= 1 && !this.complete && this.failure === null && !this.continued && this.header('expect')?.toLowerCase() === '100-continue') {
      this.continued = true;
      this.flow.writeContinue();
    }
    const pieces = this.buffered;
    this.buffered = [];
    this.bufferedBytes = 0;
    for (const { piece, release } of pieces) {
      reader.data(piece);
      release();
    }
    if (this.failure) reader.error(this.failure);
    else if (this.complete) reader.end();
  }

  /** Stops / restarts reading this request's body from the client (backpressure). */
  pause(): void {
    this.flow.pause(this);
  }

  resume(): void {
    this.flow.resume(this);
  }

  // From the connection:

  /** `chunk` may lie in a reused read buffer (client-reads.ts): valid during this call only, as for the reader. */
  pushBody(chunk: Buffer): void {
    if (this.failure) return;
    if (this.reader) this.reader.data(chunk);
    else {
      this.buffered.push({ piece: chunk, release: retain(chunk) });
      this.bufferedBytes += chunk.length;
    }
  }

  pushEnd(): void {
    this.complete = true;
    this.reader?.end();
  }

  /** The body will never be complete. */
  pushError(err: Error): void {
    if (this.complete || this.failure) return;
    this.failure = err;
    for (const { release } of this.buffered) release();
    this.buffered = [];
    this.bufferedBytes = 0;
    this.reader?.error(err);
  }

  /** The parser refused the body half-way; false when nobody can answer that (see BodyReader.malformed). */
  pushMalformed(error: DrawbridgeError): boolean {
    if (this.complete || this.failure) return false;
    const handled = this.reader?.malformed?.(error) ?? false;
    this.failure = error;
    return handled;
  }
}
