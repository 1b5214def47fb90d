/**
 * When a Console-managed Defender renews its certificates (pure: the clock and randomness come in).
 *
 * - Renewal is due when less than a third of a certificate's lifetime is left, for whichever of the two
 *   (server, client) gets there first. The lifetime counts from when the certificates arrived, when that is later
 *   than notBefore: the Console back-dates notBefore by minutes for clock skew, which would make a short-lived
 *   certificate look two thirds used the moment it arrives (main/companion/companion-state.ts does the same).
 * - An expired client certificate cannot authenticate a renewal: only a new enrolment helps. An expired server
 *   certificate alone can still be renewed.
 * - Between checks the Defender waits until renewal is due but at most `checkEveryMs` (an hour), plus up to a tenth
 *   of that as jitter, so a fleet enrolled together does not renew in lockstep and a clock jump is noticed.
 * - After a failed attempt it waits for the backoff, but never longer than a tenth of what is left of the client
 *   certificate (so a short-lived one is retried often enough to be renewed in time), and at least a second.
 */
export interface CertificateTimes {
  /** Epoch milliseconds. */
  readonly notBefore: number;
  readonly notAfter: number;
}

export interface RenewalInput {
  readonly server: CertificateTimes;
  readonly client: CertificateTimes;
  /** When these certificates arrived (epoch ms), or null when unknown. */
  readonly receivedAt: number | null;
}

export type RenewalDecision = { readonly action: 'wait'; readonly dueAt: number } | { readonly action: 'renew' } | { readonly action: 're-enrol' };

export const CHECK_EVERY_MS = 3600_000;
const MIN_RETRY_MS = 1000;

/** The moment a third of the certificate's lifetime is left. */
export function renewalDueAt(cert: CertificateTimes, receivedAt: number | null): number {
  const from = Math.min(Math.max(cert.notBefore, receivedAt ?? -Infinity), cert.notAfter);
  return from + ((cert.notAfter - from) * 2) / 3;
}

export function decideRenewal(input: RenewalInput, now: number): RenewalDecision {
  if (input.client.notAfter <= now) return { action: 're-enrol' };
  const dueAt = Math.min(renewalDueAt(input.server, input.receivedAt), renewalDueAt(input.client, input.receivedAt));
  return dueAt <= now ? { action: 'renew' } : { action: 'wait', dueAt };
}

/** How long to wait before looking again, after `decision` (random in [0, 1)). */
export function nextCheckDelay(decision: RenewalDecision, now: number, random: number, checkEveryMs = CHECK_EVERY_MS): number {
  if (decision.action === 'renew') return 0;
  const base = decision.action === 'wait' ? Math.min(decision.dueAt - now, checkEveryMs) : checkEveryMs;
  return Math.max(0, Math.round(base + (random * base) / 10));
}

/** How long to wait after a failed renewal, given the backoff's proposal. */
export function retryDelay(backoffMs: number, clientNotAfter: number, now: number): number {
  return Math.max(MIN_RETRY_MS, Math.min(backoffMs, Math.floor((clientNotAfter - now) / 10)));
}
