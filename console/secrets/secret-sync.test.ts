// The sync on a real (in-memory) SQLite database with the real migrations and sealing; the store is a provider
// object scripted per test (the providers themselves are tested against their protocol servers).
import Database from 'better-sqlite3';
import { beforeEach, describe, expect, test } from 'vitest';
import { masterKeyFromBytes } from '../crypto/master-key.js';
import { migrate, type Db } from '../db/database.js';
import { PolicyClock } from '../policy/policy-clock.js';
import { SecretSync } from './secret-sync.js';
import { SecretValues, type ValueRef } from './secret-values.js';
import { StoreError, type SecretProvider } from './stores/secret-provider.js';

let db: Db;
let clock: PolicyClock;
let values: SecretValues;
let store: Map<string, string | StoreError>;
let wanted: ValueRef[];
let inFlight: number;
let maxInFlight: number;
let closed: number;

function provider(): SecretProvider {
  return {
    kind: 'vault',
    async fetch({ path }) {
      const v = store.get(path); // the value when the request reached the store
      inFlight++;
      maxInFlight = Math.max(maxInFlight, inFlight);
      await new Promise((r) => setTimeout(r, 2));
      inFlight--;
      if (v === undefined) throw new StoreError('not_found', 'vault', `no secret '${path}'`);
      if (v instanceof StoreError) throw v;
      return v;
    },
    testConnection: async () => undefined,
    close: () => void closed++,
  };
}

function newSync(concurrency = 8): SecretSync {
  return new SecretSync({ values, wanted: () => wanted, providerFor: () => provider(), clock, log: { info() {}, error() {} }, concurrency });
}

beforeEach(() => {
  db = new Database(':memory:');
  migrate(db);
  clock = new PolicyClock(db);
  values = new SecretValues(db, masterKeyFromBytes(Buffer.alloc(32, 1)));
  store = new Map();
  wanted = [];
  inFlight = maxInFlight = closed = 0;
});

describe('SecretSync', () => {
  test('fetches every wanted secret once, at most `concurrency` at a time, and closes its providers', async () => {
    for (let i = 0; i < 50; i++) store.set(`p${i}`, `v${i}`);
    wanted = [...Array.from({ length: 50 }, (_, i) => ({ store: 'vault', path: `p${i}` })), { store: 'VAULT', path: 'p0' }];
    const report = await newSync(4).syncAll('test');
    expect(report).toMatchObject({ secrets: 50, changed: 50, failed: [] });
    expect(maxInFlight).toBe(4);
    expect(closed).toBe(1);
    expect(values.read([{ store: 'vault', path: 'p7' }]).get(JSON.stringify(['vault', 'p7', null]))).toBe('v7');
  });

  test('bumps the policy version only when a value changed', async () => {
    store.set('a', '1');
    wanted = [{ store: 'vault', path: 'a' }];
    const sync = newSync();
    const v0 = clock.current();
    await sync.syncAll('first');
    expect(clock.current()).toBe(v0 + 1);
    await sync.syncAll('same');
    expect(clock.current()).toBe(v0 + 1);
    store.set('a', '2');
    expect((await sync.syncAll('changed')).changed).toBe(1);
    expect(clock.current()).toBe(v0 + 2);
  });

  test('a failing store keeps the last good value and records the error; success clears it', async () => {
    store.set('a', 'good');
    wanted = [{ store: 'vault', path: 'a' }];
    const sync = newSync();
    await sync.syncAll('first');
    store.set('a', new StoreError('unreachable', 'vault', 'cannot connect to http://127.0.0.1:1 (ECONNREFUSED)'));
    const report = await sync.syncAll('down');
    expect(report.failed).toEqual([{ store: 'vault', path: 'a', key: null, code: 'unreachable', message: 'vault: cannot connect to http://127.0.0.1:1 (ECONNREFUSED)' }]);
    expect(values.status()).toEqual([expect.objectContaining({ path: 'a', hasValue: true, error: { code: 'unreachable', message: 'vault: cannot connect to http://127.0.0.1:1 (ECONNREFUSED)' } })]);
    expect([...values.read(wanted).values()]).toEqual(['good']);
    store.set('a', 'good');
    await sync.syncAll('back');
    expect(values.status()[0]!.error).toBeNull();
  });

  test('an unexpected error is reported by its type only (its message could carry anything)', async () => {
    wanted = [{ store: 'vault', path: 'a' }];
    const sync = new SecretSync({
      values, wanted: () => wanted, clock, log: { info() {}, error() {} },
      providerFor: () => ({ ...provider(), fetch: async () => { throw new TypeError('token=hvs.abc leaked in a library message'); } }),
    });
    const report = await sync.syncAll('x');
    expect(report.failed[0]).toMatchObject({ code: 'error', message: 'unexpected TypeError while fetching' });
  });

  test('a store that cannot be built fails its secrets, not the sync', async () => {
    store.set('b', 'fine');
    wanted = [{ store: 'broken', path: 'a' }, { store: 'vault', path: 'b' }];
    const sync = new SecretSync({
      values, wanted: () => wanted, clock, log: { info() {}, error() {} },
      providerFor: (name) => {
        if (name === 'broken') throw new StoreError('config', 'vault', 'invalid store configuration: address: must be an http(s) URL');
        return provider();
      },
    });
    const report = await sync.syncAll('x');
    expect(report.failed.map((f) => [f.store, f.code])).toEqual([['broken', 'config']]);
    expect(report.changed).toBe(1);
  });

  test('values no rule names any more are pruned (and that is a change Defenders hear about)', async () => {
    store.set('a', '1').set('b', '2');
    wanted = [{ store: 'vault', path: 'a' }, { store: 'vault', path: 'b' }];
    const sync = newSync();
    await sync.syncAll('both');
    const v = clock.current();
    wanted = [{ store: 'vault', path: 'a' }];
    await sync.syncAll('one');
    expect(values.status().map((s) => s.path)).toEqual(['a']);
    expect(clock.current()).toBe(v + 1);
  });

  test('a refresh asked for during a sync runs once more after it, and concurrent askers share that run', async () => {
    store.set('a', '1');
    wanted = [{ store: 'vault', path: 'a' }];
    const sync = newSync();
    const first = sync.syncAll('one');
    store.set('a', '2');
    const [second, third] = [sync.syncAll('two'), sync.syncAll('three')];
    expect(second).toBe(third);
    expect((await first).changed).toBe(1);
    expect((await second).changed).toBe(1);
    expect([...values.read(wanted).values()]).toEqual(['2']);
  });
});
