/**
 * The answer to a container inspect, with the env secrets of a marked container redacted (shared redactInspect),
 * whatever the API version prefix (the route classifier gives container_inspect for all of them).
 *
 * - A 200 answer is buffered (bounded) and parsed; anything else (404, errors) streams through unchanged.
 * - Fail closed: an answer we cannot check (too large, not JSON, compressed) is not passed on; the client gets
 *   Docker's JSON error (502) instead.
 * - An unmarked container's answer goes out byte for byte as dockerd sent it.
 */
import type { DrawbridgeError } from '../../shared/errors/drawbridge-error.js';
import { redactInspect } from '../../shared/secrets/redact-inspect.js';
import { defenderErrors } from '../errors.js';
import type { AnswerTransform } from './secrets-guard.js';

const MAX_INSPECT = 16 * 1024 * 1024;

function headerValue(headers: readonly string[], name: string): string | undefined {
  for (let i = 0; i < headers.length; i += 2) if (headers[i]!.toLowerCase() === name) return headers[i + 1];
  return undefined;
}

const refusal = (why: string): DrawbridgeError =>
  defenderErrors.docker_unreachable(`[Drawbridge] the inspect answer could not be checked for secrets (${why}); it was not passed on`);

/** A container inspect answer, redacted: 200 answers are held whole and checked; others stream through. */
export const redactedInspectAnswer: AnswerTransform = {
  maxBytes: MAX_INSPECT,
  takes: (status) => status === 200,
  refusal,
  finish(raw, headers) {
    const encoding = headerValue(headers, 'content-encoding');
    if (encoding !== undefined && encoding.toLowerCase() !== 'identity') return { error: refusal('it is compressed') };
    let parsed: unknown;
    try {
      parsed = JSON.parse(raw.toString('utf8'));
    } catch {
      return { error: refusal('it is not JSON') };
    }
    const redacted = redactInspect(parsed);
    const body = redacted === parsed ? raw : Buffer.from(`${JSON.stringify(redacted)}\n`, 'utf8');
    const kept: string[] = [];
    for (let i = 0; i < headers.length; i += 2) if (headers[i]!.toLowerCase() !== 'content-length') kept.push(headers[i]!, headers[i + 1]!);
    return { headers: [...kept, 'Content-Length', String(body.length)], body };
  },
};
