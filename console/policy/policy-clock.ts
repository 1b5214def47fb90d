/**
 * The policy version: one counter (stored in `meta`) that every change Defenders must learn about bumps — rules,
 * revocations, a Defender's listener type. Listeners (the push hub) are told after the change is committed.
 */
import type { Db } from '../db/database.js';

export class PolicyClock {
  private readonly listeners = new Set<(version: number, reason: string) => void>();

  constructor(private readonly db: Db) {}

  current(): number {
    const row = this.db.prepare("SELECT value FROM meta WHERE key = 'policy.version'").get() as { value: string } | undefined;
    return row ? Number(row.value) : 1;
  }

  /** Call inside the transaction that makes the change; listeners run after it commits (next microtask). */
  bump(reason: string): number {
    const next = this.current() + 1;
    this.db.prepare("INSERT INTO meta (key, value) VALUES ('policy.version', ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value").run(String(next));
    queueMicrotask(() => {
      for (const l of this.listeners) l(next, reason);
    });
    return next;
  }

  onChange(listener: (version: number, reason: string) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }
}
