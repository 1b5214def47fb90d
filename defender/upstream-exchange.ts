/**
 * One HTTP/1.1 request/response exchange with dockerd over a pool of raw keep-alive connections, without
 * http.ClientRequest and its Agent (which cost the Defender more CPU per request than everything else it does).
 *
 * - The Defender writes the request bytes itself: request line, the headers it was given, the one framing header
 *   it chose (Content-Length or chunked), the body. A method, target, header name or value holding CR, LF or NUL is
 *   never written (throws): no request can be split into two on dockerd's side.
 * - dockerd's answers are framed by Node's own llhttp parser (llhttp.ts), strict as by default: the Defender never
 *   guesses where an answer ends. A parse error ends the exchange and destroys the connection.
 * - One exchange at a time per connection. A connection goes back to the pool only when its request was written in
 *   full and dockerd's answer was parsed to its end with keep-alive; anything else (an error, an abort, an answer
 *   before the request was sent in full, a body delimited by close, an upgrade, bytes after the answer, an idle
 *   connection that receives anything) destroys it, so no answer can ever be read as another request's.
 * - Interim 1xx answers are skipped (as http.ClientRequest does); the final answer is relayed.
 */
import type { OnReadOpts, Socket } from 'node:net';
import { requestHead } from './http-head.js';
import { HttpParser as Parser, type NodeHttpParser } from './llhttp.js';
import { ReadBuffers, retain, type Release } from './read-buffers.js';

const MAX_FREE = 64;
const MAX_OPEN = 256;

export interface UpstreamHandlers {
  /**
   * dockerd's final answer head. `rawHeaders` as on the wire: name, value, name, value… `framing`: how dockerd
   * frames the body. Returning true takes the body as dockerd framed it (chunk lines included), relayed byte for
   * byte: only for a length or chunked body, and only when the head arrived whole in one read.
   */
  head(status: number, statusMessage: string, rawHeaders: string[], framing: AnswerFraming): boolean | void;
  /**
   * A piece of the answer's body: de-framed (a buffer of its own), or as dockerd framed it if `head` asked so. Such a
   * relayed piece lies in a reused read buffer (read-buffers.ts): valid until this call returns; `retain` keeps it.
   */
  body(chunk: Buffer): void;
  /** Everything read so far was delivered and the answer is not complete (a streaming answer: flush the head). */
  idle(): void;
  /** The answer is complete. */
  end(): void;
  /** The exchange failed (connection refused or lost, a parse error); no other handler is called afterwards. */
  error(err: Error): void;
}

/** How dockerd frames an answer's body: a length, chunks, the end of the connection, or no body at all. */
export type AnswerFraming = 'length' | 'chunked' | 'close' | 'none';

function framingOf(method: string, status: number, rawHeaders: readonly string[]): AnswerFraming {
  if (method === 'HEAD' || status === 204 || status === 304) return 'none';
  let framing: AnswerFraming = 'close';
  for (let i = 0; i < rawHeaders.length; i += 2) {
    const name = rawHeaders[i]!.toLowerCase();
    if (name === 'transfer-encoding') framing = 'chunked'; // llhttp refuses anything else, and a length with it
    else if (name === 'content-length' && framing !== 'chunked') framing = 'length';
  }
  return framing;
}

const HEAD_END = Buffer.from('\r\n\r\n', 'latin1');

/** How the request body goes upstream: all of it now, or streamed later through `write`/`finish`. */
export type RequestBody =
  | { readonly kind: 'buffer'; readonly body: Buffer | null }
  /** Streamed with chunked framing (the caller sent `Transfer-Encoding: chunked`). */
  | { readonly kind: 'chunked' }
  /** Streamed as is (the caller sent the Content-Length the client declared). */
  | { readonly kind: 'length' };

export interface UpstreamExchange {
  /**
   * Streams a piece of the request body (framing 'chunked' or 'length'); false: wait for `onDrain`. A piece that lies
   * in a reused read buffer is retained until the socket is done with it.
   */
  write(chunk: Buffer): boolean;
  onDrain(cb: () => void): void;
  /** The streamed request body is complete. */
  finish(): void;
  /** Stops / restarts reading the answer (backpressure from the client). */
  pause(): void;
  resume(): void;
  /** Gives up: the connection is destroyed, no handler is called any more. */
  abort(): void;
}

interface PooledConnection {
  readonly socket: Socket;
  readonly parser: NodeHttpParser;
  /** The exchange that owns the connection, or null while it idles in the pool. */
  onData: ((chunk: Buffer) => void) | null;
  onGone: ((err: Error) => void) | null;
  dead: boolean;
}

export interface UpstreamPool {
  exchange(method: string, target: string, rawHeaders: readonly string[], body: RequestBody, handlers: UpstreamHandlers): UpstreamExchange;
  close(): void;
}

/** `connectRaw(onread)`: a new connection to dockerd that reads through `onread`. */
export function upstreamPool(connectRaw: (onread: OnReadOpts) => Socket): UpstreamPool {
  const buffers = new ReadBuffers();
  const free: PooledConnection[] = [];
  const waiting: Array<(c: PooledConnection) => void> = [];
  let open = 0;
  let closed = false;

  const destroy = (c: PooledConnection): void => {
    if (c.dead) return;
    c.dead = true;
    open--;
    const i = free.indexOf(c);
    if (i >= 0) free.splice(i, 1);
    c.socket.destroy();
    setImmediate(() => c.parser.close()); // never while its execute() may still be on the stack
    const next = waiting.shift();
    if (next) next(fresh());
  };

  function fresh(): PooledConnection {
    open++;
    const socket = connectRaw(
      buffers.reader((chunk) => {
        if (c.onData) c.onData(chunk);
        else gone(new Error('dockerd sent bytes on an idle connection'));
      }),
    );
    const c: PooledConnection = { socket, parser: new Parser(), onData: null, onGone: null, dead: false };
    const gone = (err: Error): void => {
      const onGone = c.onGone;
      destroy(c);
      onGone?.(err);
    };
    socket.on('error', gone);
    socket.on('end', () => {
      // Only an answer delimited by the end of the connection may end here; the exchange decides (parser.finish).
      if (c.onData) c.onData(EOF);
      else gone(new Error('dockerd closed the connection'));
    });
    socket.on('close', () => gone(new Error('dockerd closed the connection')));
    return c;
  }

  const acquire = (use: (c: PooledConnection) => void): void => {
    const c = free.pop();
    if (c) use(c);
    else if (open < MAX_OPEN) use(fresh());
    else waiting.push(use);
  };

  const release = (c: PooledConnection): void => {
    c.onData = null;
    c.onGone = null;
    if (c.dead) return;
    const next = waiting.shift();
    if (next) next(c);
    else if (closed || free.length >= MAX_FREE) destroy(c);
    else free.push(c);
  };

  return {
    exchange(method, target, rawHeaders, body, handlers) {
      let head = requestHead(method, target, rawHeaders); // throws before anything is sent
      let conn: PooledConnection | null = null;
      let finished = false; // no handler will be called any more
      let requestSent = false;
      let responseDone = false;
      let keepAlive = false;
      let paused = false;
      let pendingHead: string | null = null;
      let drainCb: (() => void) | null = null;
      // Streamed body pieces written before a connection was assigned, kept from being read over until sent.
      const queued: Array<{ readonly chunk: Buffer; readonly release: Release }> = [];
      let queuedFinish = false;

      // Also after the answer was delivered (bytes after it): the connection is never reused.
      const fail = (err: Error): void => {
        if (conn) destroy(conn);
        if (finished) return;
        finished = true;
        handlers.error(err);
      };
      let extra = false; // dockerd sent bytes after its answer
      const settle = (c: PooledConnection): void => {
        if (requestSent && keepAlive && !extra && !c.dead) release(c);
        else destroy(c);
      };

      const start = (c: PooledConnection): void => {
        if (finished) {
          release(c);
          return;
        }
        conn = c;
        let headers: string[] = [];
        let gotHead = false;
        let sawHeadThisRead = false;
        /** The body is relayed as dockerd framed it (see `head`). */
        let raw = false;
        /** The head is being split off the read it arrived in (raw relay is possible for this answer). */
        let rawPossible = false;
        let firstRead = true;
        // The body pieces of one read leave in one write: dockerd frames `logs` as one chunk per line.
        let pieces: Buffer[] = [];
        const parser = c.parser;
        parser.initialize(Parser.RESPONSE, {}, 0, 0);
        // A handler that throws (writeHead refusing a header dockerd sent) fails the exchange, never the parser.
        const guard = (f: () => void): void => {
          try {
            f();
          } catch (err) {
            fail(err as Error);
          }
        };
        parser[Parser.kOnMessageBegin] = (): void => {
          if (gotHead) extra = true; // the answer is relayed, the connection never reused
        };
        parser[Parser.kOnHeaders] = (more: string[]): void => {
          headers.push(...more);
        };
        parser[Parser.kOnHeadersComplete] = (_maj: number, _min: number, hs: string[] | undefined, _m: unknown, _u: unknown, status: number, message: string, upgrade: boolean, shouldKeepAlive: boolean): number => {
          const all = hs === undefined ? headers : hs;
          headers = [];
          if (finished || extra) return 0;
          if (status >= 100 && status < 200 && status !== 101) return 1; // interim: skip, the final answer follows
          if (upgrade) {
            fail(new Error('dockerd sent an unexpected answer'));
            return 1;
          }
          gotHead = true;
          sawHeadThisRead = true;
          keepAlive = shouldKeepAlive;
          const framing = framingOf(method, status, all);
          let wantsRaw = false;
          try {
            wantsRaw = handlers.head(status, message, all, framing) === true;
          } catch (err) {
            fail(err as Error);
          }
          raw = rawPossible && wantsRaw && (framing === 'length' || framing === 'chunked');
          // Relayed as is: the parser only tracks where the answer ends, no body piece is copied out of it.
          parser[Parser.kOnBody] = raw ? undefined : onBody;
          return method === 'HEAD' ? 1 : 0;
        };
        const onBody = (chunk: Buffer): void => {
          if (!finished && !extra) pieces.push(chunk);
        };
        parser[Parser.kOnBody] = onBody;
        parser[Parser.kOnMessageComplete] = (): void => {
          if (gotHead && !extra) responseDone = true; // otherwise: the end of an interim answer
        };
        c.onGone = fail;
        c.onData = (chunk: Buffer): void => {
          if (finished) return;
          sawHeadThisRead = false;
          let r: number | Error | undefined;
          /** Body bytes of this read to relay as they are (raw). */
          let rawPiece: Buffer | null = null;
          try {
            if (chunk === EOF) r = parser.finish();
            else if (raw) {
              r = parser.execute(chunk);
              rawPiece = chunk;
            } else if (!gotHead && method !== 'HEAD') {
              // The head is parsed on its own, so that the body bytes after it can be relayed as is. Only a head that
              // starts and ends in this read is split off (its first CRLF CRLF is its end); one spread over reads
              // (rare: dockerd writes its head at once) is parsed the usual way.
              const end = firstRead ? chunk.indexOf(HEAD_END) : -1;
              firstRead = false;
              rawPossible = end >= 0;
              r = parser.execute(rawPossible ? chunk.subarray(0, end + 4) : chunk);
              rawPossible = false;
              if (!(r instanceof Error) && end >= 0 && end + 4 < chunk.length) {
                const rest = chunk.subarray(end + 4);
                if (raw) rawPiece = rest;
                r = parser.execute(rest);
              }
            } else r = parser.execute(chunk);
          } catch (err) {
            r = err as Error;
          }
          if (chunk === EOF && !responseDone) fail(new Error('dockerd closed the connection before its answer was complete'));
          // Bytes after the answer in a read relayed as is cannot be told apart from it: nothing of that read goes on.
          else if (rawPiece !== null && extra) fail(new Error('dockerd sent bytes after its answer'));
          // Garbage after a complete answer does not spoil that answer; the connection is destroyed in settle().
          else if (r instanceof Error && !(extra && responseDone)) fail(new Error(`dockerd's answer could not be parsed (${(r as NodeJS.ErrnoException).code ?? r.message})`));
          else if (!finished) {
            const delivered = pieces.length > 0 || (rawPiece !== null && rawPiece.length > 0);
            if (rawPiece !== null && rawPiece.length > 0) guard(() => handlers.body(rawPiece!));
            else if (pieces.length > 0) guard(() => handlers.body(pieces.length === 1 ? pieces[0]! : Buffer.concat(pieces)));
            pieces = [];
            if (responseDone && !finished) {
              finished = true;
              guard(() => handlers.end());
            } else if (!finished && sawHeadThisRead && !delivered) guard(() => handlers.idle());
          }
          if (responseDone && c.onData !== null) {
            c.onData = null;
            settle(c);
          }
        };
        if (paused) c.socket.pause();
        else c.socket.resume();
        // The head and a buffered body leave in one write (one packet, one read for dockerd).
        if (body.kind === 'buffer') {
          requestSent = true;
          if (body.body !== null && body.body.length > 0) c.socket.write(Buffer.concat([Buffer.from(head, 'latin1'), body.body]));
          else c.socket.write(head, 'latin1');
        } else {
          pendingHead = head;
          for (const q of queued.splice(0)) sendPiece(q.chunk, q.release);
          if (queuedFinish) sendFinish();
          else if (pendingHead !== null) flushHead();
        }
        head = '';
      };

      const flushHead = (): void => {
        if (pendingHead === null || !conn) return;
        conn.socket.write(pendingHead, 'latin1');
        pendingHead = null;
      };
      /** Writes a piece; `release` once the socket is done with it (written, or the write failed). */
      const sendPiece = (chunk: Buffer, release: Release): boolean => {
        const s = conn!.socket;
        const done = (): void => release();
        if (pendingHead !== null) s.cork();
        flushHead();
        let ok: boolean;
        if (body.kind === 'chunked') {
          s.cork();
          s.write(`${chunk.length.toString(16)}\r\n`, 'latin1');
          s.write(chunk, done);
          ok = s.write('\r\n', 'latin1');
          s.uncork();
        } else ok = s.write(chunk, done);
        if (s.writableCorked) s.uncork();
        return ok;
      };
      const sendFinish = (): void => {
        flushHead();
        if (body.kind === 'chunked') conn!.socket.write('0\r\n\r\n', 'latin1');
        requestSent = true;
      };

      acquire(start);
      return {
        write(chunk) {
          if (finished || chunk.length === 0) return true; // answered or aborted already: the rest is dropped
          // The piece may lie in a reused read buffer (client-reads.ts): kept until the socket is done with it.
          const release = retain(chunk);
          if (!conn) {
            queued.push({ chunk, release });
            return true;
          }
          return sendPiece(chunk, release);
        },
        onDrain(cb) {
          drainCb = cb;
          const arm = (): void => {
            if (conn) conn.socket.once('drain', () => drainCb?.());
            else setImmediate(arm);
          };
          arm();
        },
        finish() {
          if (finished) return;
          if (!conn) queuedFinish = true;
          else sendFinish();
        },
        pause() {
          paused = true;
          conn?.socket.pause();
        },
        resume() {
          paused = false;
          conn?.socket.resume();
        },
        abort() {
          if (finished) return;
          finished = true;
          for (const q of queued.splice(0)) q.release();
          if (conn) destroy(conn);
        },
      };
    },
    close() {
      closed = true;
      for (const c of [...free]) destroy(c);
    },
  };
}

/** Marks the end of dockerd's side of the connection in `onData`. */
const EOF = Buffer.alloc(0);
