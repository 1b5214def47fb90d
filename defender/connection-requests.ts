/**
 * The requests of one client connection: in the order they arrived, one at a time, as dockerd's own Go server
 * handles them.
 *
 * - Pipelined requests are handled one after another: the next one starts when the previous answer is done. So
 *   decisions, audit lines and effects on dockerd follow the wire order, and a hijack (attach, exec start) never
 *   starts while an earlier answer is still being written on the same connection.
 * - Once an answer closed the connection (`Connection: close`: the Defender refusing a request whose body it will
 *   not read, the client's own, shutdown), requests already pipelined behind it are never processed (RFC 9112
 *   §9.6): nobody could read their answers, so nothing may happen on their behalf.
 * - Parse errors (Node's 'clientError') are answered once per connection. Node dispatches a request as soon as its
 *   head is parsed and may reject it only afterwards (`Transfer-Encoding: gzip`, a broken chunk): such an error
 *   belongs to that request. If it is being handled, its handler answers and audits it (a body read in progress
 *   fails with 400; a stream body already going to dockerd is cut with the connection, never completed). Otherwise
 *   — an error in a new request's head, or in the body of one still waiting for its turn — the Defender audits it
 *   (with the connection's user) and answers Docker's JSON 400 in that request's turn, then closes; unless an
 *   earlier answer closed the connection already: those bytes were never going to be read.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { TLSSocket } from 'node:tls';
import { identityOf, type DefenderContext } from './authorize-request.js';
import { defenderErrors } from './errors.js';
import { failBodyRead } from './request-body.js';

interface Turn {
  readonly req: IncomingMessage | null;
  readonly start: () => void;
  readonly drop: () => void;
}

interface Connection {
  /** A request of this connection is being handled (its answer is not done). */
  busy: boolean;
  readonly waiting: Turn[];
  /** The last request Node dispatched (the parser may be inside its body). */
  last: { readonly req: IncomingMessage; readonly res: ServerResponse; started: boolean } | null;
  parserFailed: boolean;
}

const connections = new WeakMap<Duplex, Connection>();

function connectionOf(socket: Duplex): Connection {
  let c = connections.get(socket);
  if (!c) {
    c = { busy: false, waiting: [], last: null, parserFailed: false };
    connections.set(socket, c);
  }
  return c;
}

function enqueue(c: Connection, socket: Duplex, turn: Turn): void {
  c.waiting.push(turn);
  if (!c.busy) next(c, socket);
}

function next(c: Connection, socket: Duplex): void {
  c.busy = false;
  for (let turn = c.waiting.shift(); turn; turn = c.waiting.shift()) {
    if (!socket.writable) {
      turn.drop(); // the connection is closing: this request is never processed
      continue;
    }
    c.busy = true;
    turn.start();
    return;
  }
}

/** Runs `handle` for an ordinary request once every earlier request of its connection is answered. */
export function handleInOrder(req: IncomingMessage, res: ServerResponse, handle: () => void): void {
  const c = connectionOf(req.socket);
  const last = { req, res, started: false };
  c.last = last;
  enqueue(c, req.socket, {
    req,
    start: () => {
      last.started = true;
      res.once('close', () => next(c, req.socket));
      handle();
    },
    drop: () => undefined, // its socket is closing; Node discards the request with it
  });
}

/** Runs `handle` for an upgrade once every earlier request of its connection is answered; the stream is last. */
export function upgradeInOrder(socket: Duplex, handle: () => void): void {
  const c = connectionOf(socket);
  c.last = null; // Node detached its parser: nothing after this is HTTP
  enqueue(c, socket, { req: null, start: handle, drop: () => socket.destroy() });
}

export function answerClientError(ctx: DefenderContext, err: NodeJS.ErrnoException, socket: Duplex): void {
  if (!socket.writable || (socket as TLSSocket).encrypted === undefined) {
    socket.destroy();
    return;
  }
  const c = connectionOf(socket);
  if (c.parserFailed) return; // the parser stays broken; the connection is answered once
  c.parserFailed = true;
  const code = err.code ?? 'parse error';
  let culprit: IncomingMessage | null = null;
  if (c.last && !c.last.req.complete) {
    const { req, res, started } = c.last;
    if (started) {
      if (res.writableEnded) return; // already answered (with Connection: close); it closes after that
      if (!failBodyRead(req, defenderErrors.bad_request(`[Drawbridge] the request body is malformed (${code})`))) socket.destroy();
      return;
    }
    culprit = req; // still waiting for its turn: it is never handled; the 400 below is its answer
    const i = c.waiting.findIndex((t) => t.req === req);
    if (i >= 0) c.waiting.splice(i, 1);
  }
  const reason = `malformed HTTP request (${code})`;
  const identity = identityOf(socket as TLSSocket); // who sent it, even though we cannot tell what it was
  const body = JSON.stringify({ message: `[Drawbridge] ${reason}` });
  enqueue(c, socket, {
    req: null,
    start: () => {
      ctx.audit.write({
        time: new Date().toISOString(), user: identity?.user ?? null, groups: identity?.groups ?? [], host: ctx.hostName, action: 'unknown',
        method: culprit?.method ?? '', path: (culprit?.url ?? '').split('?')[0]!, decision: 'reject', rule: null, status: 400,
        client: (socket as Socket).remoteAddress ?? null, reason,
      });
      ctx.metrics.countRequest('unknown', 'reject');
      socket.end(`HTTP/1.1 400 Bad Request\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`);
    },
    // Bytes after an answer that closed the connection (Node reports them as HPE_CLOSED_CONNECTION): ignored.
    drop: () => undefined,
  });
}
