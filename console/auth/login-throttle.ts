/**
 * Failed password logins slow down the next ones, so a password cannot be guessed online at the speed of the
 * server (the API login and the companion's sign-in page share it).
 *
 * - Per user name, in any letter case, whether or not such a user exists (a lockout must not tell which names do):
 *   after FREE_FAILURES failures in a row, the next attempt waits 1 s after the last failure, then 2 s, 4 s… up to
 *   MAX_WAIT_S. An attempt during the wait is refused before the password is even checked, so it teaches nothing.
 * - Per client address too (many names, one password each): after ADDRESS_FAILURES failures within WINDOW_S, the
 *   address waits out the rest of that window.
 * - A successful login clears its name (not its address); a name or address quiet for WINDOW_S + MAX_WAIT_S is forgotten.
 * - In memory: a restart forgets, and the table is bounded (the oldest entries go first).
 */
import { consoleErrors } from '../errors.js';
import type { User, UserStore } from './user-store.js';

export const FREE_FAILURES = 5;
export const MAX_WAIT_S = 15 * 60;
export const ADDRESS_FAILURES = 100;
export const WINDOW_S = 15 * 60;
const MAX_ENTRIES = 10_000;

interface Failures {
  count: number;
  first: number;
  last: number;
}

export class LoginThrottle {
  private readonly names = new Map<string, Failures>();
  private readonly addresses = new Map<string, Failures>();

  constructor(private readonly now: () => number = Date.now) {}

  /** Throws 429 (naming how long to wait) when `name` or `address` must wait before the next attempt. */
  check(name: string, address: string | null): void {
    const now = this.now();
    const byName = this.fresh(this.names, name.toLowerCase(), now);
    if (byName && byName.count >= FREE_FAILURES) {
      const until = byName.last + Math.min(MAX_WAIT_S, 2 ** (byName.count - FREE_FAILURES)) * 1000;
      if (now < until) throw consoleErrors.too_many_requests(`too many failed logins for '${name}': try again in ${Math.ceil((until - now) / 1000)} s`);
    }
    const byAddress = address === null ? undefined : this.fresh(this.addresses, address, now);
    const addressUntil = byAddress ? byAddress.first + WINDOW_S * 1000 : 0;
    if (byAddress && byAddress.count >= ADDRESS_FAILURES && now < addressUntil) {
      throw consoleErrors.too_many_requests(`too many failed logins from this address: try again in ${Math.ceil((addressUntil - now) / 1000)} s`);
    }
  }

  failed(name: string, address: string | null): void {
    const now = this.now();
    const key = name.toLowerCase();
    // A name counts failures in a row (its wait doubles until a success); an address counts within its window.
    const byName = this.fresh(this.names, key, now);
    this.put(this.names, key, { count: (byName?.count ?? 0) + 1, first: byName?.first ?? now, last: now });
    if (address === null) return;
    const byAddress = this.fresh(this.addresses, address, now);
    const inWindow = byAddress !== undefined && now - byAddress.first <= WINDOW_S * 1000;
    this.put(this.addresses, address, inWindow ? { count: byAddress.count + 1, first: byAddress.first, last: now } : { count: 1, first: now, last: now });
  }

  succeeded(name: string): void {
    this.names.delete(name.toLowerCase());
  }

  /** The entry for `key` unless it has been quiet for WINDOW_S + MAX_WAIT_S (then it is forgotten). */
  private fresh(map: Map<string, Failures>, key: string, now: number): Failures | undefined {
    const f = map.get(key);
    if (f && now - f.last > WINDOW_S * 1000 + MAX_WAIT_S * 1000) {
      map.delete(key);
      return undefined;
    }
    return f;
  }

  /** Sets `key` last in `map` (its order is the age order the bound drops from). */
  private put(map: Map<string, Failures>, key: string, f: Failures): void {
    map.delete(key);
    map.set(key, f);
    if (map.size > MAX_ENTRIES) map.delete(map.keys().next().value!);
  }
}

/**
 * A password login through `throttle`: 429 while the name or address must wait, else the user when the password is
 * right and the account enabled, null otherwise (counted as a failure). The API login and the sign-in page use it.
 */
export async function passwordLogin(throttle: LoginThrottle, users: UserStore, name: string, password: string, address: string | null): Promise<User | null> {
  throttle.check(name, address);
  const user = await users.verify(name, password);
  if (user) throttle.succeeded(name);
  else throttle.failed(name, address);
  return user;
}
