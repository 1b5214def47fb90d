/**
 * One client connection, after its TLS handshake: HTTP/1.1 parsed by llhttp straight from the socket, requests
 * handled one at a time in the order they arrived, as dockerd's own Go server handles them.
 *
 * - Every request on a keep-alive connection is parsed and handed to `request` on its own, with its answer
 *   (client-answer.ts). A request whose turn has come is handed over as soon as its head is parsed: its body follows
 *   through its reader (incoming-request.ts), so a stream body is decided before a byte of it is read.
 * - Pipelined requests wait for their turn: the next one starts when the previous answer is written. Decisions,
 *   audit lines and effects on dockerd follow the wire order, and a hijack never starts while an earlier answer is
 *   still being written. Reading from the client stops while a megabyte or 32 requests wait.
 * - An upgrading request (`Connection: Upgrade`) ends HTTP on the connection: the parser stops after its head and
 *   the socket, with the bytes that followed the head, goes to `upgrade` in its turn.
 * - Once an answer closed the connection (`Connection: close`: a refused body, the client's own wish, shutdown),
 *   requests already pipelined behind it are never processed (RFC 9112 §9.6): nobody could read their answers, so
 *   nothing may happen on their behalf. The client still gets to read the answer: our side is ended, and what the
 *   client is still sending (a denied `docker load` still uploading) is read and dropped for up to 2 s and 16 MiB,
 *   as Go's net/http does (closeWriteAndWait); destroying at once would answer its writes with a RST before it
 *   read the 403.
 * - A parse error is answered once per connection, and parsing stops. The parser may refuse a request only after
 *   its head was handed over (a broken chunk): such an error belongs to that request. If it is being handled, its
 *   body reader answers it (a body read in progress fails with 400); a body already going to dockerd is cut with
 *   the connection, never completed. Otherwise — an error in a new head, or in the body of a request still
 *   waiting — the error is audited (`malformed`) and answered with Docker's JSON 400 in that request's turn.
 * - llhttp parses heads; a body framed by one Content-Length or by chunks is read by the Defender itself
 *   (body-framer.ts): the parser stops right after such a head (as after an upgrade's), the body's data goes to the
 *   request as slices of the reads it came in (Node's parser would copy every piece into a new buffer), and the
 *   parser takes over again after the body's last byte. Other framings are left to the parser (and refused later).
 * - A head must arrive within 60 s of its first byte, and an idle keep-alive connection is closed after 65 s
 *   (`sweep`); a request in progress, however long (an upload, `logs -f`), is never cut.
 */
import type { TLSSocket } from 'node:tls';
import { bodyFramer, type BodyFramer } from './body-framer.js';
import { closingErrorAnswer, defenderErrors } from './errors.js';
import { ClientAnswer } from './client-answer.js';
import { lendClientReads } from './client-reads.js';
import { IncomingRequest, type RequestFlow } from './incoming-request.js';
import { HttpParser, methods, type NodeHttpParser } from './llhttp.js';
import type { ReadBuffers } from './read-buffers.js';

const MAX_WAITING_BYTES = 1024 * 1024;
const MAX_WAITING_REQUESTS = 32;
const LINGER_MS = 2_000;
const LINGER_BYTES = 16 * 1024 * 1024;
const HEADERS_TIMEOUT_MS = 60_000;
const KEEP_ALIVE_TIMEOUT_MS = 65_000;

export interface ConnectionHandlers {
  /** An ordinary request, in its turn. */
  request(req: IncomingRequest, answer: ClientAnswer): void;
  /** An upgrading request, in its turn; the socket is no longer HTTP (`head`: the bytes after its head). */
  upgrade(req: IncomingRequest, head: Buffer): void;
  /** A request the parser refused, before it is answered 400 (`culprit`: its head, when it was parsed). */
  malformed(socket: TLSSocket, culprit: IncomingRequest | null, reason: string): void;
}

export interface ConnectionOptions {
  readonly maxHeaderSize: number;
  /** What the client sends is read into these (client-reads.ts); without them, into Node's own fresh buffers. */
  readonly readBuffers?: ReadBuffers;
  /** The listener is closing: answers say `Connection: close`. */
  closing(): boolean;
}

export interface ClientConnection {
  /** Nothing is being handled or waiting (a shutdown may close it now). */
  readonly idle: boolean;
  /** Closes the connection if it is idle. */
  closeIfIdle(): void;
  /** Enforces the head and keep-alive timeouts (call now and then). */
  sweep(now: number): void;
}

type Turn = { readonly kind: 'request' | 'upgrade'; readonly req: IncomingRequest; readonly head?: Buffer } | { readonly kind: 'malformed'; readonly req: IncomingRequest | null; readonly reason: string };

type State = 'http' | 'failed' | 'upgraded' | 'lingering' | 'closed';

type ParseResult = ReturnType<NodeHttpParser['execute']>;

/** From the head callback: the parser stops right after this head, as after an upgrade's, and skips its body. */
const STOP_AFTER_HEAD = 2;

const EMPTY = Buffer.alloc(0);

export function serveConnection(socket: TLSSocket, handlers: ConnectionHandlers, opts: ConnectionOptions): ClientConnection {
  const parser: NodeHttpParser = new HttpParser();
  parser.initialize(HttpParser.REQUEST, {}, opts.maxHeaderSize, 0);
  let state: State = 'http';
  const waiting: Turn[] = [];
  let current: { readonly req: IncomingRequest | null; answer: ClientAnswer | null } | null = null;
  /** The request whose body the parser is in (null between messages). */
  let parsing: IncomingRequest | null = null;
  let upgradeTurn: IncomingRequest | null = null;
  let clientEnded = false;
  let headStartedAt = 0;
  let idleSince = Date.now();
  let readerPaused: IncomingRequest | null = null;
  let queuePaused = false;
  let partialHeaders: string[] = [];
  let partialUrl = '';
  /** The framing of the body being read by the Defender (of `parsing`), null while the parser has the bytes. */
  let framer: BodyFramer | null = null;
  /** The parser is about to call message-complete for a head it stopped after: that is not the body's end. */
  let headOnly = false;

  let paused = false;
  const updateFlow = (): void => {
    if (state !== 'http') return;
    const pause = readerPaused !== null || queuePaused;
    if (pause === paused) return;
    paused = pause;
    if (pause) socket.pause();
    else socket.resume();
  };
  const flow: RequestFlow = {
    pause(req) {
      if (req !== parsing) return; // its body is all in: nothing more to hold back
      readerPaused = req;
      updateFlow();
    },
    resume(req) {
      if (readerPaused !== req) return;
      readerPaused = null;
      updateFlow();
    },
    writeContinue() {
      if (socket.writable) socket.write('HTTP/1.1 100 Continue\r\n\r\n', 'latin1');
    },
  };

  parser[HttpParser.kOnMessageBegin] = (): void => {
    headStartedAt = Date.now();
  };
  parser[HttpParser.kOnHeaders] = (headers: string[], url: string): void => {
    partialHeaders.push(...headers);
    partialUrl += url;
  };
  parser[HttpParser.kOnHeadersComplete] = (_major: number, minor: number, headers: string[] | undefined, method: number, url: string | undefined, _s: unknown, _m: unknown, upgrade: boolean, keepAlive: boolean): number => {
    const rawHeaders = headers ?? partialHeaders;
    const target = url ?? partialUrl;
    partialHeaders = [];
    partialUrl = '';
    headStartedAt = 0;
    if (state !== 'http') return 1;
    const req = new IncomingRequest(socket, methods[method] ?? '', target, rawHeaders, minor, keepAlive, flow);
    if (upgrade) {
      upgradeTurn = req; // the parser stops after this head (2: no body, upgrade)
      return 2;
    }
    parsing = req;
    framer = bodyFramer(rawHeaders, opts.maxHeaderSize);
    waiting.push({ kind: 'request', req });
    // Its turn may come at once, before its body is parsed: the handler decides first, and a body read in progress
    // learns of a framing error in that body (and answers it) instead of the connection.
    if (current === null && waiting.length === 1) pump();
    if (framer === null) return 0;
    headOnly = true;
    return STOP_AFTER_HEAD;
  };
  parser[HttpParser.kOnBody] = (chunk: Buffer): void => {
    parsing?.pushBody(chunk);
  };
  parser[HttpParser.kOnMessageComplete] = (): void => {
    if (headOnly) headOnly = false;
    else bodyEnded();
  };
  function bodyEnded(): void {
    const req = parsing;
    parsing = null;
    framer = null;
    if (readerPaused === req) readerPaused = null;
    req?.pushEnd();
  }
  const toBody = (piece: Buffer): void => parsing?.pushBody(piece);

  const onData = (chunk: Buffer): void => {
    if (state !== 'http') return;
    // The read is the parser's up to a head it stops after, then the body's (the framer's), then the parser's again…
    let piece = chunk;
    let r: ParseResult = 0;
    while (piece.length > 0 && state === 'http') {
      if (framer !== null) {
        let taken: number;
        try {
          taken = framer.take(piece, toBody);
        } catch (err) {
          r = err as Error & { code?: string };
          break;
        }
        if (framer?.done) bodyEnded();
        piece = taken === piece.length ? EMPTY : piece.subarray(taken);
        continue;
      }
      r = parser.execute(piece);
      if (r instanceof Error || upgradeTurn || framer === null) break;
      // Stopped after a head whose body the framer reads. The parser now counts the connection as upgraded, and as
      // such would let the next message's parse error pass as a byte count: it starts afresh instead.
      parser.initialize(HttpParser.REQUEST, {}, opts.maxHeaderSize, 0);
      piece = piece.subarray(r);
    }
    if (r instanceof Error) {
      // An answer given during this execute may have closed the connection already: then nothing more is answered.
      if (state === 'http') parseFailed(r.code ?? 'parse error');
    }
    else if (upgradeTurn) {
      state = 'upgraded';
      socket.off('data', onData);
      socket.pause();
      waiting.push({ kind: 'upgrade', req: upgradeTurn, head: Buffer.from(piece.subarray(r as number)) }); // kept: a copy
      upgradeTurn = null;
      destroyParser();
    }
    holdBackIfQueued();
    pump();
  };

  function holdBackIfQueued(): void {
    let bytes = 0;
    for (const t of waiting) bytes += t.req?.bufferedBytes ?? 0;
    queuePaused = waiting.length > MAX_WAITING_REQUESTS || bytes > MAX_WAITING_BYTES;
    updateFlow();
  }

  function parseFailed(code: string): void {
    state = 'failed';
    framer = null;
    destroyParser();
    const culprit = parsing;
    parsing = null;
    if (culprit && culprit.started) {
      if (current?.answer?.ended) return; // already answered (with Connection: close); it closes after that
      if (!culprit.pushMalformed(defenderErrors.bad_request(`[Drawbridge] the request body is malformed (${code})`))) socket.destroy();
      return;
    }
    if (culprit) {
      culprit.pushError(new Error('malformed'));
      const i = waiting.findIndex((t) => t.req === culprit);
      if (i >= 0) waiting.splice(i, 1); // never handled: the 400 below is its answer
    }
    waiting.push({ kind: 'malformed', req: culprit, reason: `malformed HTTP request (${code})` });
  }

  function pump(): void {
    if (current !== null || state === 'closed') return;
    for (let turn = waiting.shift(); turn; turn = waiting.shift()) {
      if (state === 'lingering' || !socket.writable) {
        if (turn.kind === 'upgrade') socket.destroy();
        continue; // the connection is closing: this request is never processed
      }
      start(turn);
      return;
    }
    idleSince = Date.now();
    if ((clientEnded || opts.closing()) && state !== 'upgraded') closeGracefully();
  }

  function start(turn: Turn): void {
    holdBackIfQueued();
    if (turn.kind === 'malformed') {
      current = { req: turn.req, answer: null };
      handlers.malformed(socket, turn.req, turn.reason);
      socket.write(closingErrorAnswer(defenderErrors.bad_request(`[Drawbridge] ${turn.reason}`)));
      linger();
      return;
    }
    turn.req.started = true;
    if (turn.kind === 'upgrade') {
      current = { req: turn.req, answer: null }; // for good: the socket is the hijack's now
      handlers.upgrade(turn.req, turn.head!);
      return;
    }
    const entry: { req: IncomingRequest; answer: ClientAnswer | null } = { req: turn.req, answer: null };
    current = entry;
    entry.answer = new ClientAnswer(socket, turn.req, opts.closing, (close) => {
      if (current !== entry) return;
      current = null;
      if (close) linger();
      // Not from here: an answer given at once (a denial) would start the next request inside this one's stack,
      // and a read full of pipelined requests would nest that deep.
      else queueMicrotask(pump);
    });
    handlers.request(turn.req, entry.answer);
  }

  /** Ends our side after the answer and drops what the client still sends (see the header). */
  function linger(): void {
    if (state === 'lingering' || state === 'closed') return;
    const wasUpgraded = state === 'upgraded';
    state = 'lingering';
    destroyParser();
    waiting.length = 0;
    if (wasUpgraded) return;
    socket.off('data', onData);
    let discarded = 0;
    const done = (): void => {
      clearTimeout(timer);
      socket.destroy();
    };
    const timer = setTimeout(done, LINGER_MS);
    socket.on('data', (chunk: Buffer) => {
      discarded += chunk.length;
      if (discarded > LINGER_BYTES) done();
    });
    socket.once('end', done).once('close', () => clearTimeout(timer));
    socket.end();
    socket.resume();
  }

  function closeGracefully(): void {
    if (state === 'closed' || state === 'lingering') return;
    state = 'lingering';
    destroyParser();
    socket.end();
  }

  let parserAlive = true;
  function destroyParser(): void {
    if (!parserAlive) return;
    parserAlive = false;
    setImmediate(() => parser.close()); // never while its execute() may still be on the stack
  }

  socket.on('data', onData);
  // Lent chunks reach the parser, the framer and the request bodies only: see IncomingRequest.pushBody.
  if (opts.readBuffers) lendClientReads(socket, opts.readBuffers, () => state === 'http');
  socket.on('end', () => {
    clientEnded = true;
    if (state === 'http') {
      const err = parser.finish();
      if (err instanceof Error || parsing) {
        // The client stopped sending in the middle of a request: its body will never be complete.
        const req = parsing;
        parsing = null;
        req?.pushError(new Error('the client closed the connection'));
        if (req && !req.started) {
          const i = waiting.findIndex((t) => t.req === req);
          if (i >= 0) waiting.splice(i, 1);
        }
      }
    }
    pump();
  });
  socket.on('error', () => socket.destroy());
  socket.on('close', () => {
    const wasUpgraded = state === 'upgraded';
    state = 'closed';
    destroyParser();
    const gone = new Error('the client closed the connection');
    parsing?.pushError(gone);
    for (const t of waiting) t.req?.pushError(gone);
    waiting.length = 0;
    if (!wasUpgraded) {
      current?.answer?.clientGone();
      current?.req?.pushError(gone);
    }
  });

  return {
    get idle() {
      return current === null && waiting.length === 0 && headStartedAt === 0 && state === 'http';
    },
    closeIfIdle() {
      if (this.idle) socket.destroy();
    },
    sweep(now) {
      if (state !== 'http' || current !== null) return;
      if (headStartedAt !== 0 && now - headStartedAt > HEADERS_TIMEOUT_MS) socket.destroy();
      else if (headStartedAt === 0 && waiting.length === 0 && now - idleSince > KEEP_ALIVE_TIMEOUT_MS) socket.destroy();
    },
  };
}
