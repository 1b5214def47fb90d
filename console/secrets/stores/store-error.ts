/**
 * Errors of the secret store providers.
 *
 * - A message names the store kind, the address or secret path and what to do; it never carries a secret value,
 *   a credential or a store's raw response body (those can echo tokens), so every message may be shown.
 * - Network failures are classified once here, for every provider: refused/unresolvable/reset → unreachable,
 *   certificate problems → unreachable with a hint about caPem, our deadline → timeout.
 */
import { DrawbridgeError } from '../../../shared/errors/drawbridge-error.js';
import type { StoreKind } from './store-config.js';

export type StoreErrorCode = 'config' | 'unreachable' | 'auth' | 'forbidden' | 'not_found' | 'no_such_key' | 'bad_response' | 'timeout';

const STATUS: Record<StoreErrorCode, number> = {
  config: 400,
  unreachable: 502,
  auth: 502,
  forbidden: 502,
  not_found: 404,
  no_such_key: 404,
  bad_response: 502,
  timeout: 504,
};

export class StoreError extends DrawbridgeError {
  override readonly name = 'StoreError';
  declare readonly code: StoreErrorCode;
  constructor(code: StoreErrorCode, readonly kind: StoreKind | 'builtin', message: string) {
    super(code, `${kind}: ${message}`, STATUS[code], true);
  }
}

const TLS_CODES = /^(CERT_|UNABLE_TO_|DEPTH_ZERO_SELF_SIGNED_CERT|SELF_SIGNED_CERT_IN_CHAIN|ERR_TLS_CERT_ALTNAME_INVALID|ERR_SSL_|EPROTO)/;
const NET_CODES = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'ECONNRESET', 'EHOSTUNREACH', 'ENETUNREACH', 'EPIPE', 'ECONNABORTED', 'UND_ERR_SOCKET', 'UND_ERR_CONNECT_TIMEOUT', 'ETIMEDOUT']);

/** The errno-style code of `error` or of any error in its cause chain (SDKs wrap them differently). */
function networkCode(error: unknown): string | undefined {
  for (let e: unknown = error, depth = 0; e && typeof e === 'object' && depth < 6; e = (e as { cause?: unknown }).cause, depth++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string' && (NET_CODES.has(code) || TLS_CODES.test(code))) return code;
    // node-fetch (google) and AggregateError (happy eyeballs) keep it elsewhere.
    const errno = (e as { errno?: unknown }).errno;
    if (typeof errno === 'string' && (NET_CODES.has(errno) || TLS_CODES.test(errno))) return errno;
    const inner = (e as { errors?: unknown }).errors;
    if (Array.isArray(inner) && inner.length > 0) return networkCode(inner[0]);
  }
  return undefined;
}

function isAbort(error: unknown): boolean {
  for (let e: unknown = error, depth = 0; e && typeof e === 'object' && depth < 6; e = (e as { cause?: unknown }).cause, depth++) {
    const name = (e as { name?: unknown }).name;
    if (name === 'AbortError' || name === 'TimeoutError') return true;
  }
  return false;
}

/**
 * A StoreError for a failure to talk to the store at all, or undefined when `error` is something else (an answer
 * the provider must interpret). `deadline` is the signal of our own time limit, to tell a timeout from a caller's
 * cancellation.
 */
export function transportError(kind: StoreKind, address: string, error: unknown, signals: { deadline: AbortSignal; caller?: AbortSignal | undefined }): StoreError | undefined {
  if (error instanceof StoreError) return error;
  if (signals.caller?.aborted) return new StoreError('timeout', kind, `the request to ${address} was cancelled`);
  if (signals.deadline.aborted || isAbort(error)) return new StoreError('timeout', kind, `${address} did not answer in time`);
  const code = networkCode(error);
  if (code === undefined) return undefined;
  if (TLS_CODES.test(code)) return new StoreError('unreachable', kind, `TLS with ${address} failed (${code}): check the address and, for a private CA, caPem`);
  if (code === 'ENOTFOUND' || code === 'EAI_AGAIN') return new StoreError('unreachable', kind, `cannot resolve the host of ${address} (${code}): check the address`);
  return new StoreError('unreachable', kind, `cannot connect to ${address} (${code}): is the store running and the address right?`);
}

/** A deadline of `timeoutMs` combined with the caller's signal. */
function deadlineSignal(timeoutMs: number, caller?: AbortSignal): { deadline: AbortSignal; signal: AbortSignal; caller?: AbortSignal | undefined } {
  const deadline = AbortSignal.timeout(timeoutMs);
  return { deadline, caller, signal: caller ? AbortSignal.any([deadline, caller]) : deadline };
}

type Signals = ReturnType<typeof deadlineSignal>;

/**
 * Runs `call` under a deadline of `timeoutMs` and the caller's signal, turning whatever it throws into a
 * StoreError with `mapError`. The call gets the combined signal; a client that takes none (google-gax takes a
 * timeout) is still cut off by the race against it.
 */
export async function underDeadline<T>(timeoutMs: number, caller: AbortSignal | undefined, call: (signal: AbortSignal) => Promise<T>, mapError: (error: unknown, signals: Signals) => StoreError): Promise<T> {
  const signals = deadlineSignal(timeoutMs, caller);
  let onAbort: () => void = () => undefined;
  const aborted = new Promise<never>((_, reject) => {
    onAbort = () => reject(signals.signal.reason);
    signals.signal.addEventListener('abort', onAbort, { once: true });
  });
  aborted.catch(() => undefined);
  try {
    return await Promise.race([call(signals.signal), aborted]);
  } catch (error) {
    throw error instanceof StoreError ? error : mapError(error, signals);
  } finally {
    signals.signal.removeEventListener('abort', onAbort);
  }
}
