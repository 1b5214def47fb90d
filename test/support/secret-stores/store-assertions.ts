/** Assertions shared by the secret store provider tests. */
import { expect } from 'vitest';
import { secretStores } from '../../../console/index.js';
import type { ProtocolServer } from './protocol-server.js';

/**
 * Awaits `promise`, expects a StoreError with `code` whose message contains every fragment and none of
 * `mustNotContain` (secret values and credentials of the test); returns the error.
 */
export async function expectStoreError(promise: Promise<unknown>, code: secretStores.StoreErrorCode, fragments: readonly (string | RegExp)[], mustNotContain: readonly string[]): Promise<secretStores.StoreError> {
  let caught: unknown;
  try {
    await promise;
  } catch (error) {
    caught = error;
  }
  expect(caught, 'expected a StoreError').toBeInstanceOf(secretStores.StoreError);
  const error = caught as secretStores.StoreError;
  expect({ code: error.code, message: error.message }).toMatchObject({ code, message: expect.any(String) });
  for (const fragment of fragments) expect(error.message).toMatch(fragment);
  for (const secret of mustNotContain) expect(error.message).not.toContain(secret);
  return error;
}

/**
 * With `server` down (connections refused), `call` fails as unreachable naming ECONNREFUSED, well before the
 * provider's 10 s deadline (so it did not sit waiting for it); the server is brought back up afterwards.
 */
export async function expectUnreachableWhileDown(server: ProtocolServer, call: () => Promise<unknown>, mustNotContain: readonly string[]): Promise<void> {
  await server.setDown(true);
  try {
    const started = Date.now();
    await expectStoreError(call(), 'unreachable', [/cannot connect to https?:\/\/127\.0\.0\.1:\d+ \(ECONNREFUSED\)/], mustNotContain);
    expect(Date.now() - started).toBeLessThan(5_000);
  } finally {
    await server.setDown(false);
  }
}
