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
import type { DrawbridgeError } from '../shared/errors/drawbridge-error.js';
import { authorizeRequest, record, type DefenderContext } from './authorize-request.js';
import type { ClientAnswer } from './client-answer.js';
import type { DockerUpstream, UpstreamExchange, UpstreamHandlers } from './docker-upstream.js';
import { defenderErrors, dockerErrorBody } from './errors.js';
import { reasonPhrase } from './http-head.js';
import type { IncomingRequest } from './incoming-request.js';
import { retain } from './read-buffers.js';
import { checkFraming, checkJsonBody, readBody, type Framing } from './request-body.js';
import type { AnswerTransform, SecretsStep } from './secrets/secrets-guard.js';

interface HeldAnswer {
  readonly transform: AnswerTransform;
  readonly status: number;
  readonly statusMessage: string;
  readonly headers: string[];
  readonly chunks: Buffer[];
  size: number;
}

const EMPTY = Buffer.alloc(0);
const BODYLESS_METHODS = new Set(['GET', 'HEAD', 'DELETE', 'OPTIONS']);
const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'te', 'trailer', 'upgrade', 'proxy-authorization', 'proxy-authenticate']);

/**
 * Raw headers without hop-by-hop ones (and without those the Connection header names). Content-Length is
 * dropped from requests (the Defender sets it from what it read) and kept on responses.
 */
export function endToEndHeaders(rawHeaders: readonly string[], keepLength = false): string[] {
  // The names every Connection header lists (all of them, as a joined `headers.connection` would give), read from
  // the raw list: materialising IncomingMessage.headers costs more than this whole function.
  let named: Set<string> | null = null;
  for (let i = 0; i < rawHeaders.length; i += 2) {
    if (rawHeaders[i]!.length === 10 && rawHeaders[i]!.toLowerCase() === 'connection') {
      named ??= new Set();
      for (const n of rawHeaders[i + 1]!.toLowerCase().split(',')) if (n.trim()) named.add(n.trim());
    }
  }
  const out: string[] = [];
  for (let i = 0; i < rawHeaders.length; i += 2) {
    const name = rawHeaders[i]!;
    const lower = name.toLowerCase();
    if (HOP_BY_HOP.has(lower) || named?.has(lower) || (lower === 'content-length' && !keepLength)) continue;
    out.push(name, rawHeaders[i + 1]!);
  }
  return out;
}

/** Docker's JSON error; `close`: the connection closes after it (a body that will not be read). */
export function sendDockerError(res: ClientAnswer, error: DrawbridgeError, close = false): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const body = dockerErrorBody(error);
  res.writeHead(error.status, reasonPhrase(error.status), ['Content-Type', 'application/json', 'Content-Length', String(body.length)], close);
  res.end(body);
}

export async function forwardRequest(ctx: DefenderContext, upstream: DockerUpstream, req: IncomingRequest, res: ClientAnswer): Promise<void> {
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
  // A stream route without a body is sent like any bodyless request (with an explicit length).
  const streamBody = route?.body === 'stream' && framing.kind !== 'none';
  let body: Buffer | null = null;
  if (!streamBody) {
    try {
      body = framing.kind === 'none' ? EMPTY : await readBody(req, framing, ctx.maxBody);
      if (route?.body === 'json') checkJsonBody(body);
    } catch (err) {
      const error = err as DrawbridgeError;
      record(ctx, req, auth, { status: error.status, error }, startedAt);
      // A body refused unread (over the limit, malformed, cut short) closes the connection, whether or not its last
      // bytes happened to be in already.
      sendDockerError(res, error, !req.complete || error.status === 413);
      return;
    }
  }
  let step: SecretsStep | null = null;
  try {
    if (ctx.secrets) step = await ctx.secrets.prepare(auth.classification, req.url, body);
  } catch (err) {
    const error = err as DrawbridgeError;
    record(ctx, req, auth, { status: error.status, error }, startedAt);
    sendDockerError(res, error, !req.complete);
    return;
  }
  if (step?.body) body = step.body;
  record(ctx, req, auth, { status: null, ...(step?.audit ? { secrets: step.audit } : {}) }, startedAt); // forwarded: dockerd answers

  const headers = endToEndHeaders(req.rawHeaders);
  if (body !== null) {
    // Always state the length: dockerd reads an empty chunked body on POST/PUT as "a body" (container start
    // refuses one).
    if (body.length > 0 || !BODYLESS_METHODS.has(req.method)) headers.push('Content-Length', String(body.length));
  } else if (framing.kind === 'chunked') headers.push('Transfer-Encoding', 'chunked');
  else if (framing.kind === 'length') headers.push('Content-Length', String(framing.length));

  // dockerd's answer: the one place its head and body are handled.
  let done = false;
  let streaming = false;
  const stopStreaming = (): void => {
    if (streaming) ctx.metrics.activeStreams--;
    streaming = false;
  };
  let waitingDrain = false;
  const resume = (): void => {
    waitingDrain = false;
    up.resume();
  };
  let headed = false;
  // An answer the secrets step must check (a container inspect to redact) is collected whole, then rewritten.
  let held: HeldAnswer | null = null;
  const refuseHeld = (error: DrawbridgeError): void => {
    held = null;
    done = true;
    up.abort();
    sendDockerError(res, error);
  };
  const handlers: UpstreamHandlers = {
    head(status, statusMessage, rawHeaders, framing) {
      headed = true;
      step?.settled?.(status);
      const headers = endToEndHeaders(rawHeaders, true);
      if (step?.answer?.takes(status, headers)) {
        held = { transform: step.answer, status, statusMessage, headers, chunks: [], size: 0 };
        return false;
      }
      // dockerd's body goes on as dockerd framed it when the client can read that framing (no copy, no re-chunking).
      const relayChunks = framing === 'chunked' && res.canRelayChunks;
      res.writeHead(status, statusMessage, headers, false, relayChunks);
      ctx.metrics.activeStreams++;
      streaming = true;
      return relayChunks || framing === 'length';
    },
    body(chunk) {
      if (held) {
        held.size += chunk.length;
        if (held.size > held.transform.maxBytes) refuseHeld(held.transform.refusal('it is too large'));
        else held.chunks.push(Buffer.from(chunk)); // the chunk may lie in a read buffer that is reused
        return;
      }
      // Reading from dockerd stops only once a megabyte waits for the client, and resumes when it caught up: while
      // the client drains what is queued, dockerd's next bytes are already on their way (as with two piped streams).
      // A relayed piece lies in a reused read buffer: retained until the client has it.
      if (!res.write(chunk, retain(chunk)) && !waitingDrain) {
        waitingDrain = true;
        up.pause();
        res.onDrain(resume);
      }
    },
    // The head leaves with the first body bytes (one TLS record for most answers); when dockerd sent its head alone
    // and more is to come (events, logs -f, a slow wait), it is flushed at once so a streaming client gets it.
    idle() {
      res.flushHeaders();
    },
    end() {
      done = true;
      stopStreaming();
      if (held) {
        const { transform, status, statusMessage, headers, chunks, size } = held;
        held = null;
        const out = transform.finish(Buffer.concat(chunks, size), headers);
        if ('error' in out) sendDockerError(res, out.error);
        else {
          res.writeHead(status, statusMessage, out.headers);
          res.end(out.body);
        }
        return;
      }
      res.end();
    },
    error(err) {
      done = true;
      stopStreaming();
      held = null;
      if (!headed) step?.settled?.(null);
      if (res.headersSent) res.destroy();
      else {
        const code = (err as NodeJS.ErrnoException).code;
        ctx.log.error('cannot reach the Docker daemon', { docker: upstream.url, error: code ?? err.message });
        sendDockerError(res, defenderErrors.docker_unreachable(`[Drawbridge] the Docker daemon behind this Defender is not reachable (${code ?? 'error'}); ask the host's administrator`), true);
      }
    },
  };
  let up: UpstreamExchange;
  try {
    // The target may be the secrets step's: a container reference pinned to the id its decision looked up.
    up = upstream.exchange(req.method, step?.url ?? req.url, headers, body !== null ? { kind: 'buffer', body } : framing.kind === 'chunked' ? { kind: 'chunked' } : { kind: 'length' }, handlers);
  } catch (err) {
    // Unreachable with Node's strict request parser; kept so that a head which could split is never sent.
    ctx.log.error('refused to forward an unsafe request head', { error: (err as Error).message });
    sendDockerError(res, defenderErrors.bad_request('[Drawbridge] the request head cannot be forwarded safely'), true);
    return;
  }
  res.onClientGone(() => {
    if (!done) {
      done = true;
      stopStreaming();
      up.abort();
    }
  });
  if (body === null) streamRequestBody(req, up);
}

/** A stream body (build context, image load, archive upload) goes upstream as it arrives, with backpressure. */
function streamRequestBody(req: IncomingRequest, up: UpstreamExchange): void {
  let waitingDrain = false;
  const resume = (): void => {
    waitingDrain = false;
    req.resume();
  };
  req.readBody({
    data(chunk) {
      if (!up.write(chunk) && !waitingDrain) {
        waitingDrain = true;
        req.pause();
        up.onDrain(resume);
      }
    },
    end: () => up.finish(),
    error: () => up.abort(), // cut short: what dockerd got so far is never completed
  });
}
