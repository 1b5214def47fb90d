/**
 * The answer to a container inspect, with the env secrets of a marked container redacted (shared redactInspect),
 * whatever the API version prefix (the route classifier gives container_inspect for all of them).
 *
 * - A 200 answer is buffered (bounded) and parsed; anything else (404, errors) streams through unchanged.
 * - Fail closed: an answer we cannot check (too large, not JSON, compressed) is not passed on; the client gets
 *   Docker's JSON error (502) instead.
 * - An unmarked container's answer goes out byte for byte as dockerd sent it.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { redactInspect } from '../../shared/secrets/redact-inspect.js';
import { defenderErrors } from '../errors.js';
import { sendDockerError } from '../forward-request.js';

const MAX_INSPECT = 16 * 1024 * 1024;

/** Takes over the response when it must be checked (returns true); false → stream it as usual. */
export function respondRedacted(upRes: IncomingMessage, res: ServerResponse, headers: readonly string[]): boolean {
  if (upRes.statusCode !== 200) return false;
  const refuse = (why: string): void => {
    upRes.destroy();
    sendDockerError(res, defenderErrors.docker_unreachable(`[Drawbridge] the inspect answer could not be checked for secrets (${why}); it was not passed on`));
  };
  if (upRes.headers['content-encoding'] !== undefined && upRes.headers['content-encoding'] !== 'identity') {
    refuse('it is compressed');
    return true;
  }
  const chunks: Buffer[] = [];
  let size = 0;
  let over = false;
  upRes.on('data', (c: Buffer) => {
    if (over) return;
    size += c.length;
    if (size > MAX_INSPECT) {
      over = true;
      refuse('it is too large');
    } else chunks.push(c);
  });
  upRes.on('end', () => {
    if (over) return;
    const raw = Buffer.concat(chunks, size);
    let parsed: unknown;
    try {
      parsed = JSON.parse(raw.toString('utf8'));
    } catch {
      refuse('it is not JSON');
      return;
    }
    const redacted = redactInspect(parsed);
    const out = redacted === parsed ? raw : Buffer.from(`${JSON.stringify(redacted)}\n`, 'utf8');
    const kept: string[] = [];
    for (let i = 0; i < headers.length; i += 2) if (headers[i]!.toLowerCase() !== 'content-length') kept.push(headers[i]!, headers[i + 1]!);
    res.writeHead(200, upRes.statusMessage, [...kept, 'Content-Length', String(out.length)]);
    res.end(out);
  });
  upRes.on('error', () => res.destroy());
  return true;
}
