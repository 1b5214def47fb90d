/**
 * What a Console-managed Defender enforces: the compiled rules, the revoked serials and the listener, from one
 * policy snapshot.
 *
 * - A snapshot is applied whole or not at all: everything is built first, then swapped in one synchronous step,
 *   so no request ever sees the new rules with the old revocation list.
 * - Before the first snapshot there is no policy (`policy` is null): authorize-request.ts denies everything.
 */
import { compilePolicy, type Policy } from '../shared/policy/evaluate-policy.js';
import type { ListenerConfig, PolicySnapshot } from '../shared/wire/defender-console.js';
import { normalizeSerial } from './authorize-request.js';

export class EnforcedPolicy {
  private state: { snapshot: PolicySnapshot; policy: Policy; revoked: ReadonlySet<string> } | null = null;

  /** Compiles and swaps in `snapshot`; throws (keeping the current one) if it cannot be compiled. */
  apply(snapshot: PolicySnapshot): void {
    const policy = compilePolicy(snapshot.rules);
    const revoked = new Set(snapshot.revokedSerials.map(normalizeSerial));
    this.state = { snapshot, policy, revoked };
  }

  get policy(): Policy | null {
    return this.state?.policy ?? null;
  }

  get version(): number {
    return this.state?.snapshot.version ?? 0;
  }

  get listener(): ListenerConfig | null {
    return this.state?.snapshot.listener ?? null;
  }

  get snapshot(): PolicySnapshot | null {
    return this.state?.snapshot ?? null;
  }

  isRevoked(serial: string): boolean {
    return this.state?.revoked.has(normalizeSerial(serial)) ?? false;
  }
}
