/**
 * Ordinary (non-hijacked) requests: decide, inspect, forward, stream the answer back.
 *
 * - Denied or rejected → Docker's JSON error with its status, so the CLI prints the reason; nothing reaches dockerd.
 *   A denied request that still has a body to send gets `Connection: close` so its body is never read.
 * - Allowed: bodies the daemon decodes are read in full and checked (request-body.ts), then sent with an exact
 *   Content-Length; stream bodies (build context, image load, archive upload) pipe through with their framing.
 * - The response streams back unbuffered (logs -f, events, stats, save, archive) with dockerd's own headers.
 * - Hop-by-hop headers are never forwarded in either direction.
 */
import type { IncomingHttpHeaders, IncomingMessage, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { DrawbridgeError } from '../shared/errors/drawbridge-error.js';
import { authorizeRequest, record, type DefenderContext } from './authorize-request.js';
import type { DockerUpstream } from './docker-upstream.js';
import { defenderErrors } from './errors.js';
import { checkFraming, checkJsonBody, readBody, type Framing } from './request-body.js';
import type { SecretsStep } from './secrets/secrets-guard.js';

const BODYLESS_METHODS = new Set(['GET', 'HEAD', 'DELETE', 'OPTIONS']);
const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'te', 'trailer', 'upgrade', 'proxy-authorization', 'proxy-authenticate']);

/**
 * Raw headers without hop-by-hop ones (and without those the Connection header names). Content-Length is
 * dropped from requests (the Defender sets it from what it read) and kept on responses.
 */
export function endToEndHeaders(rawHeaders: readonly string[], headers: IncomingHttpHeaders, keepLength = false): string[] {
  const named = new Set(String(headers.connection ?? '').toLowerCase().split(',').map((s) => s.trim()).filter(Boolean));
  const out: string[] = [];
  for (let i = 0; i < rawHeaders.length; i += 2) {
    const name = rawHeaders[i]!;
    const lower = name.toLowerCase();
    if (HOP_BY_HOP.has(lower) || named.has(lower) || (lower === 'content-length' && !keepLength)) continue;
    out.push(name, rawHeaders[i + 1]!);
  }
  return out;
}

const LINGER_MS = 2_000;
const LINGER_BYTES = 16 * 1024 * 1024;

/**
 * Closes the connection after a `Connection: close` answer without losing that answer. Node's server destroys the
 * socket as soon as the response is written; with request bytes still unread (a denied `docker load` or `cp` is
 * still uploading) the kernel then answers with a RST, and the client, still writing, fails with "broken pipe"
 * before it reads the 403. So: end our side (the client reads the answer, then EOF), and read and discard what
 * the client is still sending (never parsed: the HTTP parser is detached) until it closes, up to LINGER_MS and
 * LINGER_BYTES. Go's net/http server does the same (closeWriteAndWait).
 */
function lingerOnClose(socket: Socket): void {
  socket.destroySoon = function lingeringDestroySoon(this: Socket): void {
    if (this.destroyed) return;
    this.removeAllListeners('data'); // the HTTP parser: nothing after this answer is a request
    let discarded = 0;
    const done = (): void => {
      clearTimeout(timer);
      this.destroy();
    };
    const timer = setTimeout(done, LINGER_MS);
    this.on('data', (chunk: Buffer) => {
      discarded += chunk.length;
      if (discarded > LINGER_BYTES) done();
    });
    this.once('end', done).once('close', () => clearTimeout(timer));
    this.end();
    this.resume();
  };
}

export function sendDockerError(res: ServerResponse, error: DrawbridgeError, close = false): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const body = JSON.stringify({ message: error.expose ? error.message : 'internal error in the Drawbridge Defender' });
  res.writeHead(error.status, {
    'Content-Type': 'application/json',
    'Content-Length': Buffer.byteLength(body),
    ...(close ? { Connection: 'close' } : {}),
  });
  if (close && res.socket) lingerOnClose(res.socket);
  res.end(body);
}

export async function forwardRequest(ctx: DefenderContext, upstream: DockerUpstream, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const startedAt = performance.now();
  const auth = authorizeRequest(ctx, req);
  let framing: Framing;
  try {
    framing = checkFraming(req.rawHeaders);
  } catch (err) {
    const error = err as DrawbridgeError;
    record(ctx, req, auth, { status: error.status, error }, startedAt);
    sendDockerError(res, error, true);
    return;
  }
  if (!auth.ok) {
    record(ctx, req, auth, { status: auth.error.status, error: auth.error }, startedAt);
    sendDockerError(res, auth.error, framing.kind !== 'none' && !req.complete);
    return;
  }
  const route = auth.classification.route;
  const streamBody = route?.body === 'stream';
  let body: Buffer | null = null;
  if (!streamBody) {
    try {
      body = await readBody(req, framing, ctx.maxBody);
      if (route?.body === 'json') checkJsonBody(body);
    } catch (err) {
      const error = err as DrawbridgeError;
      record(ctx, req, auth, { status: error.status, error }, startedAt);
      sendDockerError(res, error, !req.complete);
      return;
    }
  }
  let step: SecretsStep | null = null;
  try {
    step = (await ctx.secrets?.prepare(auth.classification, req.url!, body)) ?? null;
  } catch (err) {
    const error = err as DrawbridgeError;
    record(ctx, req, auth, { status: error.status, error }, startedAt);
    sendDockerError(res, error, !req.complete);
    return;
  }
  if (step?.body) body = step.body;
  record(ctx, req, auth, { status: null, ...(step?.audit ? { secrets: step.audit } : {}) }, startedAt); // forwarded: dockerd answers

  const headers = endToEndHeaders(req.rawHeaders, req.headers);
  if (body !== null) {
    // Always state the length: Node would otherwise send an empty chunked body on POST/PUT, which dockerd reads as
    // "a body" (container start refuses one).
    if (body.length > 0 || !BODYLESS_METHODS.has(req.method!)) headers.push('Content-Length', String(body.length));
  } else if (framing.kind === 'chunked') headers.push('Transfer-Encoding', 'chunked');
  else if (framing.kind === 'length') headers.push('Content-Length', String(framing.length));

  const up = upstream.request(req.method!, step?.url ?? req.url!, headers); // a container reference pinned to its id
  let done = false;
  const abort = (): void => {
    if (!done) up.destroy();
  };
  res.on('close', abort);
  up.on('error', (err) => {
    if (done) return;
    done = true;
    step?.settled?.(null);
    if (res.headersSent) res.destroy();
    else {
      ctx.log.error('cannot reach the Docker daemon', { docker: upstream.url, error: (err as NodeJS.ErrnoException).code ?? err.message });
      sendDockerError(res, defenderErrors.docker_unreachable(`[Drawbridge] the Docker daemon behind this Defender is not reachable (${(err as NodeJS.ErrnoException).code ?? 'error'}); ask the host's administrator`), true);
    }
  });
  up.on('response', (upRes) => {
    step?.settled?.(upRes.statusCode ?? null);
    if (step?.respond?.(upRes, res, endToEndHeaders(upRes.rawHeaders, upRes.headers, true))) {
      upRes.once('end', () => (done = true));
      return;
    }
    res.writeHead(upRes.statusCode ?? 502, upRes.statusMessage, endToEndHeaders(upRes.rawHeaders, upRes.headers, true));
    ctx.metrics.activeStreams++;
    let bodyStarted = false;
    upRes.once('data', () => {
      bodyStarted = true;
    });
    upRes.pipe(res);
    // The head leaves with the first body bytes: one TLS record and one write for most answers. This tick runs
    // after the pipe has passed on what dockerd sent along with its head; if that was nothing and more is to come
    // (events, logs -f, a slow wait), the head is flushed alone, so a streaming client gets it right away.
    process.nextTick(() => {
      if (!bodyStarted && !upRes.complete && !res.writableEnded && !res.destroyed) res.flushHeaders();
    });
    upRes.on('end', () => {
      done = true;
    });
    upRes.on('close', () => {
      ctx.metrics.activeStreams--;
      if (!upRes.complete) res.destroy();
    });
  });
  if (body !== null) up.end(body);
  else req.pipe(up);
}
