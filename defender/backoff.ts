/**
 * Reconnect delays towards the Console: exponential with jitter, so a fleet of Defenders that lost the Console
 * together does not come back in lockstep.
 *
 * - Attempt n waits between half and all of min(cap, initial · 2ⁿ) ("equal jitter"): never less than half the
 *   nominal delay, so a flapping Console is not hammered, and never more than the cap.
 * - `reset()` after a success: the next failure starts again from `initial`.
 */
export interface BackoffOptions {
  readonly initialMs?: number;
  readonly maxMs?: number;
  /** A number in [0, 1); injected by tests. */
  readonly random?: () => number;
}

export class Backoff {
  private attempt = 0;
  private readonly initialMs: number;
  private readonly maxMs: number;
  private readonly random: () => number;

  constructor(opts: BackoffOptions = {}) {
    this.initialMs = opts.initialMs ?? 500;
    this.maxMs = opts.maxMs ?? 30_000;
    this.random = opts.random ?? Math.random;
  }

  /** The delay before the next attempt (and counts this failure). */
  next(): number {
    const nominal = Math.min(this.maxMs, this.initialMs * 2 ** Math.min(this.attempt, 30));
    this.attempt++;
    return Math.round(nominal / 2 + this.random() * (nominal / 2));
  }

  reset(): void {
    this.attempt = 0;
  }

  /** Failures since the last reset. */
  get failures(): number {
    return this.attempt;
  }
}
