/**
 * Hijacked requests (`Upgrade: tcp` attach and exec start, websocket attach, BuildKit session/grpc).
 *
 * - Only the first request on such a connection is HTTP; it is decided exactly like an ordinary request.
 * - Only routes dockerd really hijacks may upgrade; `Upgrade` on any other route → 400, so a raw stream can never
 *   carry unparsed requests past the Defender.
 * - Its body (exec start's JSON) must come with Content-Length and is read in full before anything is sent.
 * - The connection becomes a raw two-way stream only once dockerd answered `101`; any other answer is relayed and
 *   the connection closed.
 * - Half-close is kept both ways: the client ending stdin (TLS close_notify) ends only the write side to dockerd,
 *   and the output keeps flowing until dockerd ends it (without this `docker run` prints nothing).
 */
import type { Duplex } from 'node:stream';
import type { DrawbridgeError } from '../shared/errors/drawbridge-error.js';
import { authorizeRequest, record, type DefenderContext } from './authorize-request.js';
import type { DockerUpstream } from './docker-upstream.js';
import { closingErrorAnswer, defenderErrors } from './errors.js';
import { endToEndHeaders } from './forward-request.js';
import { answerHead } from './http-head.js';
import type { IncomingRequest } from './incoming-request.js';
import { checkFraming, checkJsonBody } from './request-body.js';

/** A head relayed from dockerd; one that cannot be written safely cuts the connection instead. */
function rawHead(socket: Duplex, status: number, message: string, rawHeaders: readonly string[]): string | null {
  try {
    return answerHead(status, message, rawHeaders);
  } catch {
    socket.destroy();
    return null;
  }
}

function writeRawError(socket: Duplex, error: DrawbridgeError): void {
  socket.end(closingErrorAnswer(error));
}

/** Reads exactly `length` bytes that follow the request head; returns them and whatever came after. */
function readExact(socket: Duplex, head: Buffer, length: number): Promise<{ body: Buffer; rest: Buffer }> {
  if (head.length >= length) return Promise.resolve({ body: head.subarray(0, length), rest: head.subarray(length) });
  return new Promise((resolve, reject) => {
    const chunks = [head];
    let size = head.length;
    const onData = (chunk: Buffer): void => {
      chunks.push(chunk);
      size += chunk.length;
      if (size >= length) {
        cleanup();
        socket.pause();
        const all = Buffer.concat(chunks, size);
        resolve({ body: all.subarray(0, length), rest: all.subarray(length) });
      }
    };
    const onEnd = (): void => {
      cleanup();
      reject(defenderErrors.bad_request('[Drawbridge] the request body was cut short'));
    };
    function cleanup(): void {
      socket.off('data', onData).off('end', onEnd).off('close', onEnd);
    }
    socket.on('data', onData).on('end', onEnd).on('close', onEnd);
    socket.resume();
  });
}

export async function forwardHijack(ctx: DefenderContext, upstream: DockerUpstream, req: IncomingRequest, socket: Duplex, head: Buffer): Promise<void> {
  const startedAt = performance.now();
  socket.on('error', () => socket.destroy());
  const auth = authorizeRequest(ctx, req);
  const fail = (error: DrawbridgeError): void => {
    record(ctx, req, auth, { status: error.status, error }, startedAt);
    writeRawError(socket, error);
  };
  if (!auth.ok) return fail(auth.error);
  if (!auth.classification.route?.hijack) {
    return fail(defenderErrors.bad_upgrade(`[Drawbridge] '${auth.classification.action}' cannot upgrade the connection; only attach, exec start, session and grpc can`));
  }
  let length = 0;
  try {
    const framing = checkFraming(req.rawHeaders);
    if (framing.kind === 'chunked') throw defenderErrors.bad_request('[Drawbridge] an upgrading request must send its body with Content-Length');
    if (framing.kind === 'length') length = framing.length;
    if (length > ctx.maxBody) throw defenderErrors.body_too_large(`[Drawbridge] the request body (${length} bytes) is over the Defender's limit of ${ctx.maxBody} bytes`);
  } catch (err) {
    return fail(err as DrawbridgeError);
  }
  let body: Buffer;
  let rest: Buffer;
  try {
    ({ body, rest } = await readExact(socket, head, length));
    if (auth.classification.route.body === 'json') checkJsonBody(body);
  } catch (err) {
    return fail(err as DrawbridgeError);
  }
  record(ctx, req, auth, { status: null }, startedAt); // forwarded: dockerd answers

  const headers = endToEndHeaders(req.rawHeaders);
  headers.push('Connection', 'Upgrade', 'Upgrade', req.header('upgrade') ?? '');
  if (length > 0) headers.push('Content-Length', String(length));
  const up = upstream.requestDedicated(req.method, req.url, headers);
  up.on('error', (err) => {
    if (socket.destroyed) return;
    ctx.log.error('cannot reach the Docker daemon', { docker: upstream.url, error: (err as NodeJS.ErrnoException).code ?? err.message });
    writeRawError(socket, defenderErrors.docker_unreachable('[Drawbridge] the Docker daemon behind this Defender is not reachable; ask the host\'s administrator'));
  });
  up.on('response', (upRes) => {
    // dockerd refused to hijack (no such container, not running…): relay its answer, then close.
    const answer = rawHead(socket, upRes.statusCode ?? 502, upRes.statusMessage ?? '', [...endToEndHeaders(upRes.rawHeaders, true), 'Connection', 'close']);
    if (answer === null) return;
    socket.write(answer);
    upRes.pipe(socket);
  });
  up.on('upgrade', (upRes, upSocket, upHead) => {
    const answer = rawHead(socket, upRes.statusCode ?? 101, upRes.statusMessage ?? 'Switching Protocols', upRes.rawHeaders);
    if (answer === null) {
      upSocket.destroy();
      return;
    }
    ctx.metrics.activeStreams++;
    socket.write(answer);
    if (upHead.length) socket.write(upHead);
    if (rest.length) upSocket.write(rest);
    const destroyBoth = (): void => {
      socket.destroy();
      upSocket.destroy();
    };
    upSocket.on('error', destroyBoth);
    socket.on('error', destroyBoth);
    let closed = 0;
    const onClose = (): void => {
      if (++closed === 2) ctx.metrics.activeStreams--;
      // once one side is fully gone nothing more can flow to it; do not leave the other dangling
      if (socket.destroyed && !upSocket.destroyed) upSocket.end();
      if (upSocket.destroyed && !socket.destroyed && socket.writableEnded === false) socket.end();
    };
    socket.on('close', onClose);
    upSocket.on('close', onClose);
    socket.pipe(upSocket);
    upSocket.pipe(socket);
    socket.resume();
  });
  up.end(body);
}
