/**
 * Request framing and bodies, checked before anything reaches dockerd.
 *
 * - Every refusal is Docker's JSON error and says it comes from Drawbridge (`[Drawbridge] …`), so the docker CLI's
 *   "Error response from daemon: …" is never mistaken for dockerd's own.
 * - One framing only: Content-Length and Transfer-Encoding together, two Content-Length headers, several
 *   Transfer-Encoding headers, or a coding other than `chunked` → 400. (Node's parser rejects most of these
 *   already; we check again explicitly so the rule does not depend on a parser default.)
 * - What the Defender forwards is exactly what it parsed: the body as framed by the request, re-sent with the
 *   same length. Bytes after a `Content-Length: 0` request are the next request and are authorised on their own.
 * - A form-encoded body is refused: dockerd's handlers call Go's ParseForm, which reads such a body as extra query
 *   parameters overriding the real ones; the docker CLI never sends one. So is a second Content-Type header or one
 *   that is not plain ASCII: Go would read the first, lower-cased with Unicode folding (`applİcation/…`).
 * - Bodies of routes whose body the daemon decodes (and of routes that take none) are read in full, up to the
 *   limit, before a byte goes upstream; over the limit → 413. Only stream routes (build context, image load,
 *   archive upload…) pass through unbuffered, after the request was authorised.
 */
import type { DrawbridgeError } from '../shared/errors/drawbridge-error.js';
import { defenderErrors } from './errors.js';
import type { IncomingRequest } from './incoming-request.js';

export type Framing = { kind: 'none' } | { kind: 'length'; length: number } | { kind: 'chunked' };

export function checkFraming(rawHeaders: readonly string[]): Framing {
  let contentLength: string | null = null;
  let transferEncoding: string | null = null;
  let contentType: string | null = null;
  for (let i = 0; i < rawHeaders.length; i += 2) {
    const name = rawHeaders[i]!.toLowerCase();
    if (name === 'content-length') {
      if (contentLength !== null) throw defenderErrors.bad_request('[Drawbridge] the request has more than one Content-Length header');
      contentLength = rawHeaders[i + 1]!.trim();
    } else if (name === 'transfer-encoding') {
      if (transferEncoding !== null) throw defenderErrors.bad_request('[Drawbridge] the request has more than one Transfer-Encoding header');
      transferEncoding = rawHeaders[i + 1]!.trim().toLowerCase();
    } else if (name === 'content-type') {
      // Go reads the first of several; its lower-casing folds non-ASCII letters (İ → i) that ours would not.
      if (contentType !== null) throw defenderErrors.bad_request('[Drawbridge] the request has more than one Content-Type header');
      contentType = rawHeaders[i + 1]!;
      if (/[^\x20-\x7e\t]/.test(contentType)) throw defenderErrors.bad_request('[Drawbridge] the request\'s Content-Type header is not plain ASCII');
    }
  }
  if (contentType !== null && /^\s*application\/x-www-form-urlencoded\b/i.test(contentType)) {
    throw defenderErrors.bad_request('[Drawbridge] form-encoded request bodies are not accepted (dockerd would read them as query parameters)');
  }
  if (contentLength !== null && transferEncoding !== null) {
    throw defenderErrors.bad_request('[Drawbridge] the request has both Content-Length and Transfer-Encoding');
  }
  if (transferEncoding !== null) {
    if (transferEncoding !== 'chunked') throw defenderErrors.bad_request(`[Drawbridge] unsupported Transfer-Encoding '${transferEncoding}' (only chunked)`);
    return { kind: 'chunked' };
  }
  if (contentLength !== null) {
    if (!/^\d{1,15}$/.test(contentLength)) throw defenderErrors.bad_request('[Drawbridge] the request has an invalid Content-Length');
    const length = Number(contentLength);
    return length === 0 ? { kind: 'none' } : { kind: 'length', length };
  }
  return { kind: 'none' };
}

/**
 * Reads the whole body (any framing) into memory, refusing more than `limit` bytes. A body the parser refuses
 * half-way fails the read with that error (the caller answers it).
 */
export function readBody(req: IncomingRequest, framing: Framing, limit: number): Promise<Buffer> {
  if (framing.kind === 'none') return Promise.resolve(Buffer.alloc(0));
  if (framing.kind === 'length' && framing.length > limit) {
    return Promise.reject(defenderErrors.body_too_large(`[Drawbridge] the request body (${framing.length} bytes) is over the Defender's limit of ${limit} bytes`));
  }
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let settled = false;
    const fail = (error: DrawbridgeError): void => {
      if (settled) return;
      settled = true;
      reject(error);
    };
    req.readBody({
      data(chunk) {
        if (settled) return;
        size += chunk.length;
        if (size > limit) fail(defenderErrors.body_too_large(`[Drawbridge] the request body is over the Defender's limit of ${limit} bytes`));
        else chunks.push(Buffer.from(chunk)); // a copy: the chunk is valid during this call only
      },
      end() {
        if (settled) return;
        settled = true;
        resolve(Buffer.concat(chunks, size));
      },
      error: (err) => fail(defenderErrors.bad_request(`[Drawbridge] the request body could not be read: ${err.message}`)),
      malformed(error) {
        if (settled) return false;
        fail(error);
        return true;
      },
    });
  });
}

/** A JSON body the daemon decodes must at least be JSON; an empty one is left to dockerd's own defaults. */
export function checkJsonBody(body: Buffer): void {
  if (body.length === 0) return;
  try {
    JSON.parse(body.toString('utf8'));
  } catch {
    throw defenderErrors.bad_request('[Drawbridge] the request body is not valid JSON');
  }
}
