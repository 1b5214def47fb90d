/** Polling instead of sleeping: wait for an observable condition, with a deadline and a useful failure. */
import { setTimeout as sleep } from 'node:timers/promises';

/**
 * Calls `probe` until it returns something other than undefined/false, and resolves with that. Fails after
 * `timeoutMs` with `what` and the last value seen (or the last error `probe` threw).
 */
export async function pollUntil<T>(what: string, probe: () => Promise<T | undefined | false> | T | undefined | false, timeoutMs = 10_000, intervalMs = 25): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const value = await probe();
      if (value !== undefined && value !== false) return value;
      last = value;
    } catch (err) {
      last = err;
    }
    if (Date.now() >= deadline) {
      const seen = last instanceof Error ? last.message : JSON.stringify(last);
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what} (last: ${seen})`);
    }
    await sleep(intervalMs);
  }
}
