/**
 * Fetching secret values from their stores into the Console's sealed cache (secret-values.ts).
 *
 * - When: the values a secret rule needs, before the rule is created or changed (the caller commits the rule
 *   after, so Defenders get rule and values in one policy version); everything every rule needs, periodically
 *   (on by default) and on demand (the refresh call).
 * - A failed fetch keeps the last good value and records the error for the status API; the sync goes on with the
 *   other secrets. Nothing is dropped because a store is down.
 * - The policy version is bumped once per sync that changed a value (or pruned one), so Defenders re-inject only
 *   when something changed.
 * - One full sync at a time: a refresh asked for while one runs waits for the next one.
 * - Fetches run concurrently (a bounded pool), one provider per store per sync, closed after it.
 * - Errors carry the provider's message, which names what failed and never a value; unexpected errors are
 *   reported by their type only.
 */
import type { SecretRef } from '../../shared/secrets/secret-rules.js';
import type { ConsoleLog } from '../context.js';
import type { PolicyClock } from '../policy/policy-clock.js';
import type { SecretProvider } from './stores/secret-provider.js';
import { StoreError } from './stores/secret-provider.js';
import type { SecretValues, ValueRef } from './secret-values.js';

export interface SyncFailure {
  readonly store: string;
  readonly path: string;
  readonly key: string | null;
  readonly code: string;
  readonly message: string;
}

export interface SyncReport {
  readonly secrets: number;
  readonly changed: number;
  readonly failed: readonly SyncFailure[];
  readonly durationMs: number;
}

export interface SecretSyncDeps {
  readonly values: SecretValues;
  /** Every secret the current rules name. */
  readonly wanted: () => ValueRef[];
  /** A provider for a store, or a StoreError('config') when the store does not exist. */
  readonly providerFor: (store: string) => SecretProvider;
  readonly clock: PolicyClock;
  readonly log: ConsoleLog;
  readonly concurrency?: number;
}

function uniqueRefs(refs: readonly ValueRef[]): ValueRef[] {
  const seen = new Map<string, ValueRef>();
  for (const r of refs) seen.set(JSON.stringify([r.store.toLowerCase(), r.path, r.key ?? null]), { store: r.store, path: r.path, ...(r.key !== undefined ? { key: r.key } : {}) });
  return [...seen.values()];
}

export class SecretSync {
  private running: Promise<SyncReport> | null = null;
  private queued: Promise<SyncReport> | null = null;
  private timer: NodeJS.Timeout | null = null;

  constructor(private readonly deps: SecretSyncDeps) {}

  /** Fetches and records these secrets; no version bump (the caller's change bumps it). */
  async fetch(refs: readonly Pick<SecretRef, 'store' | 'path' | 'key'>[]): Promise<SyncReport> {
    const started = performance.now();
    const list = uniqueRefs(refs);
    const providers = new Map<string, SecretProvider | StoreError>();
    const provider = (store: string): SecretProvider => {
      const k = store.toLowerCase();
      let p = providers.get(k);
      if (p === undefined) {
        try {
          p = this.deps.providerFor(store);
        } catch (e) {
          p = e instanceof StoreError ? e : new StoreError('config', 'builtin', `the store '${store}' cannot be used: ${(e as Error).message}`);
        }
        providers.set(k, p);
      }
      if (p instanceof StoreError) throw p;
      return p;
    };
    const failed: SyncFailure[] = [];
    const fetched: Array<{ ref: ValueRef; value: string }> = [];
    let next = 0;
    const worker = async (): Promise<void> => {
      for (let i = next++; i < list.length; i = next++) {
        const ref = list[i]!;
        try {
          fetched.push({ ref, value: await provider(ref.store).fetch({ path: ref.path, ...(ref.key !== undefined ? { key: ref.key } : {}) }) });
        } catch (e) {
          const code = e instanceof StoreError ? e.code : 'error';
          const message = e instanceof StoreError ? e.message : `unexpected ${(e as Error)?.name ?? 'error'} while fetching`;
          failed.push({ store: ref.store, path: ref.path, key: ref.key ?? null, code, message });
        }
      }
    };
    try {
      await Promise.all(Array.from({ length: Math.min(this.deps.concurrency ?? 8, list.length) }, worker));
    } finally {
      for (const p of providers.values()) if (!(p instanceof StoreError)) p.close();
    }
    // One transaction for the whole outcome: one commit (and fsync) per sync, not per secret.
    const changed = this.deps.values.record(fetched, failed);
    return { secrets: list.length, changed, failed, durationMs: performance.now() - started };
  }

  /** Fetches every secret the rules name; bumps the policy version when a value changed. */
  syncAll(reason: string): Promise<SyncReport> {
    if (this.running) {
      // A sync already runs with the values of when it started: run once more after it, for whoever asks now.
      this.queued ??= this.running.then(
        () => this.runOnce(reason),
        () => this.runOnce(reason),
      );
      return this.queued;
    }
    return this.runOnce(reason);
  }

  /** Fetches the wanted secrets `which` selects (e.g. one built-in value just set); bumps when a value changed. */
  async syncSome(which: (ref: ValueRef) => boolean, reason: string): Promise<SyncReport> {
    const report = await this.fetch(this.deps.wanted().filter(which));
    if (report.changed > 0) this.deps.clock.bump('secret values');
    this.deps.log.info('secrets synced', { reason, secrets: report.secrets, changed: report.changed, failed: report.failed.length, ms: Math.round(report.durationMs) });
    return report;
  }

  private runOnce(reason: string): Promise<SyncReport> {
    this.queued = null;
    const run = (async () => {
      const wanted = this.deps.wanted();
      const report = await this.fetch(wanted);
      const pruned = this.deps.values.prune(wanted);
      if (report.changed > 0 || pruned) this.deps.clock.bump('secret values');
      this.deps.log.info('secrets synced', { reason, secrets: report.secrets, changed: report.changed, failed: report.failed.length, ms: Math.round(report.durationMs) });
      for (const f of report.failed) this.deps.log.error('secret fetch failed (the last good value is kept)', { store: f.store, path: f.path, code: f.code, error: f.message });
      return report;
    })();
    this.running = run;
    void run.finally(() => {
      if (this.running === run) this.running = null;
    });
    return run;
  }

  /** Syncs every `intervalMs` (0: never), first right away. */
  start(intervalMs: number): void {
    this.stop();
    void this.syncAll('start').catch((e: Error) => this.deps.log.error('secret sync failed', { error: e.message }));
    if (intervalMs <= 0) return;
    this.timer = setInterval(() => {
      void this.syncAll('interval').catch((e: Error) => this.deps.log.error('secret sync failed', { error: e.message }));
    }, intervalMs);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  /** Resolves when no sync runs (for shutdown). */
  async idle(): Promise<void> {
    while (this.running) await this.running.catch(() => undefined);
  }
}
