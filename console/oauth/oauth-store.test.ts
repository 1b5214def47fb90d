import Database from 'better-sqlite3';
import { randomBytes } from 'node:crypto';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { masterKeyFromBytes } from '../crypto/master-key.js';
import { migrate, type Db } from '../db/database.js';
import { OAuthStore } from './oauth-store.js';

let db: Db;
let store: OAuthStore;

beforeEach(() => {
  db = new Database(':memory:');
  migrate(db);
  store = new OAuthStore(db, masterKeyFromBytes(randomBytes(32)));
});
afterEach(() => {
  vi.useRealTimers();
  db.close();
});

const rows = () => db.prepare('SELECT * FROM oauth_models ORDER BY model').all() as Record<string, unknown>[];
const now = () => Math.floor(Date.now() / 1000);

describe('OAuthStore adapter', () => {
  it('finds what it stored, with the id as jti, and never stores a token value', async () => {
    const rt = store.adapterFor('RefreshToken');
    const value = 'refresh-token-value-0123456789abcdefghijklmno';
    await rt.upsert(value, { jti: value, kind: 'RefreshToken', grantId: 'g1', accountId: 'alice', exp: now() + 60 }, 60);
    expect(await rt.find(value)).toEqual({ jti: value, kind: 'RefreshToken', grantId: 'g1', accountId: 'alice', exp: expect.any(Number) });
    expect(JSON.stringify(rows())).not.toContain(value);
    // Models do not see each other's rows under the same id.
    expect(await store.adapterFor('AccessToken').find(value)).toBeUndefined();
    expect(await rt.find('some-other-value')).toBeUndefined();
  });

  it('marks a token consumed, and destroys it', async () => {
    const code = store.adapterFor('AuthorizationCode');
    await code.upsert('c1', { jti: 'c1', kind: 'AuthorizationCode', grantId: 'g1' }, 60);
    await code.consume('c1');
    expect(await code.find('c1')).toMatchObject({ consumed: expect.any(Number) });
    await code.destroy('c1');
    expect(await code.find('c1')).toBeUndefined();
  });

  it('finds a device code by its user code, and a session by its uid, id included (sealed, not stored in clear)', async () => {
    const device = store.adapterFor('DeviceCode');
    await device.upsert('device-code-secret', { jti: 'device-code-secret', kind: 'DeviceCode', userCode: 'BCDFGHJK' }, 600);
    expect(await device.findByUserCode('BCDFGHJK')).toMatchObject({ jti: 'device-code-secret', userCode: 'BCDFGHJK' });
    expect(await device.findByUserCode('BCDFGHJX')).toBeUndefined();
    const session = store.adapterFor('Session');
    await session.upsert('session-cookie-secret', { jti: 'session-cookie-secret', kind: 'Session', uid: 'u1', accountId: 'alice' }, 3600);
    expect(await session.findByUid('u1')).toMatchObject({ jti: 'session-cookie-secret', uid: 'u1' });
    const stored = JSON.stringify(rows());
    expect(stored).not.toContain('device-code-secret');
    expect(stored).not.toContain('session-cookie-secret');
  });

  it('never returns an expired row, and sweeps expired rows away', async () => {
    vi.useFakeTimers({ now: new Date('2026-01-01T00:00:00Z') });
    const at = store.adapterFor('AccessToken');
    await at.upsert('short', { jti: 'short', kind: 'AccessToken' }, 10);
    await at.upsert('forever', { jti: 'forever', kind: 'AccessToken' });
    vi.setSystemTime(new Date('2026-01-01T00:00:11Z'));
    expect(await at.find('short')).toBeUndefined();
    expect(await at.find('forever')).toBeDefined();
    vi.setSystemTime(new Date('2026-01-01T00:02:00Z'));
    await at.upsert('next', { jti: 'next', kind: 'AccessToken' }, 10); // a write sweeps (at most once a minute)
    expect(rows()).toHaveLength(2);
  });

  it("revokes a grant's rows of one model at a time, as oidc-provider asks, and a user's logins at once", async () => {
    for (const model of ['AccessToken', 'RefreshToken']) {
      await store.adapterFor(model).upsert(`${model}-1`, { kind: model, grantId: 'g1', accountId: 'alice' }, 60);
      await store.adapterFor(model).upsert(`${model}-2`, { kind: model, grantId: 'g2', accountId: 'alice' }, 60);
    }
    await store.adapterFor('Grant').upsert('g1', { kind: 'Grant', accountId: 'alice' }, 60);
    await store.adapterFor('AccessToken').revokeByGrantId('g1');
    expect(await store.adapterFor('AccessToken').find('AccessToken-1')).toBeUndefined();
    expect(await store.adapterFor('RefreshToken').find('RefreshToken-1')).toBeDefined();
    expect(await store.adapterFor('Grant').find('g1')).toBeDefined();

    await store.adapterFor('AccessToken').upsert('bob-at', { kind: 'AccessToken', grantId: 'g3', accountId: 'bob' }, 60);
    expect(store.revokeUserGrants('ALICE')).toBe(1);
    expect(rows().map((r) => r.account_id)).toEqual(['bob']);
  });
});
