/**
 * The Vault provider against the Vault protocol fake: KV v1 and v2, token and AppRole auth, and every failure
 * testConnection and fetch must name.
 */
import { afterAll, afterEach, beforeAll, describe, expect, test } from 'vitest';
import { secretStores } from '../../../console/index.js';
import { expectStoreError, expectUnreachableWhileDown } from './store-assertions.js';
import { VaultServer } from './vault-server.js';

const SECRETS = ['s3cr3t-db-pw', 'root-token-xyz', 'approle-secret-id-123', 'hvs.'];

let vault: VaultServer;
const providers: secretStores.SecretProvider[] = [];

function provider(config: Partial<secretStores.StoreConfigOf<'vault'>> & Pick<secretStores.StoreConfigOf<'vault'>, 'auth'>, timeoutMs?: number): secretStores.SecretProvider {
  const p = secretStores.createProvider({ kind: 'vault', address: vault.server.url, ...config }, timeoutMs ? { timeoutMs } : {});
  providers.push(p);
  return p;
}
const token = { method: 'token', token: 'root-token-xyz' } as const;
const approle = { method: 'approle', roleId: 'drawbridge-role', secretId: 'approle-secret-id-123', mount: 'approle' } as const;

beforeAll(async () => {
  vault = new VaultServer();
  await vault.server.listen();
});
afterAll(() => vault.server.close());
afterEach(() => {
  for (const p of providers.splice(0)) p.close();
  vault.reset();
});

function seed(): void {
  vault.mount('secret', 2).set('apps/db', { user: 'app', password: 's3cr3t-db-pw', port: 5432 });
  vault.mount('kv1', 1).set('apps/db', { password: 'v1-pw' });
  vault.addToken('root-token-xyz');
}

describe('fetch', () => {
  test('KV v2 with a token: a key of data.data; non-string fields come back as JSON text', async () => {
    seed();
    const p = provider({ auth: token });
    expect(await p.fetch({ path: 'apps/db', key: 'password' })).toBe('s3cr3t-db-pw');
    expect(await p.fetch({ path: 'apps/db', key: 'port' })).toBe('5432');
    expect(vault.server.seen('read-v2')).toBe(2);
  });

  test('KV v1 reads /v1/<mount>/<path>', async () => {
    seed();
    const p = provider({ auth: token, kvVersion: 1, mount: 'kv1' });
    expect(await p.fetch({ path: 'apps/db', key: 'password' })).toBe('v1-pw');
    expect(vault.server.seen('read-v1')).toBe(1);
  });

  test('without a key, a KV secret is an error listing its keys', async () => {
    seed();
    await expectStoreError(provider({ auth: token }).fetch({ path: 'apps/db' }), 'no_such_key', ["secret 'apps/db'", 'keys: user, password, port'], SECRETS);
  });

  test('a missing key names the keys that exist', async () => {
    seed();
    await expectStoreError(provider({ auth: token }).fetch({ path: 'apps/db', key: 'pw' }), 'no_such_key', ["the key 'pw' is not in secret 'apps/db' (keys: user, password, port)"], SECRETS);
  });

  test('a missing secret is not_found with mount and version', async () => {
    seed();
    await expectStoreError(provider({ auth: token }).fetch({ path: 'apps/nope', key: 'x' }), 'not_found', ["secret 'apps/nope' not found in KV v2 mount 'secret'"], SECRETS);
  });

  test('an invalid token is auth; a valid token without the policy is forbidden', async () => {
    seed();
    await expectStoreError(provider({ auth: { method: 'token', token: 'wrong-token' } }).fetch({ path: 'apps/db', key: 'password' }), 'auth', ['rejected the token'], [...SECRETS, 'wrong-token']);
    vault.addToken('limited-token', ['secret/data/other']);
    await expectStoreError(provider({ auth: { method: 'token', token: 'limited-token' } }).fetch({ path: 'apps/db', key: 'password' }), 'forbidden', ["may not read 'secret/apps/db'", 'grant read on secret/data/apps/db'], [...SECRETS, 'limited-token']);
  });

  test('the namespace goes in X-Vault-Namespace', async () => {
    seed();
    vault.namespace = 'team-a';
    await expectStoreError(provider({ auth: token }).fetch({ path: 'apps/db', key: 'password' }), 'auth', ["namespace"], SECRETS);
    expect(await provider({ auth: token, namespace: 'team-a' }).fetch({ path: 'apps/db', key: 'password' })).toBe('s3cr3t-db-pw');
  });

  test('AppRole: logs in once, reuses the token, and logs in again once after the token is revoked', async () => {
    seed();
    vault.addAppRole('drawbridge-role', 'approle-secret-id-123');
    const p = provider({ auth: approle });
    expect(await p.fetch({ path: 'apps/db', key: 'user' })).toBe('app');
    expect(await p.fetch({ path: 'apps/db', key: 'password' })).toBe('s3cr3t-db-pw');
    expect(vault.server.seen('login')).toBe(1);
    vault.revokeAllTokens();
    expect(await p.fetch({ path: 'apps/db', key: 'password' })).toBe('s3cr3t-db-pw');
    expect(vault.server.seen('login')).toBe(2);
  });

  test('AppRole with a wrong secret_id is auth, naming role_id and secret_id', async () => {
    seed();
    vault.addAppRole('drawbridge-role', 'the-real-secret-id');
    await expectStoreError(provider({ auth: approle }).fetch({ path: 'apps/db', key: 'password' }), 'auth', ['check the AppRole role_id and secret_id'], [...SECRETS, 'the-real-secret-id']);
  });

  test('server down: unreachable, fast', async () => {
    seed();
    await expectUnreachableWhileDown(vault.server, () => provider({ auth: token }).fetch({ path: 'apps/db', key: 'password' }), SECRETS);
  });
});

describe('testConnection', () => {
  test('succeeds for a token and for AppRole, checking health, the token and the mount', async () => {
    seed();
    vault.addAppRole('drawbridge-role', 'approle-secret-id-123');
    await provider({ auth: token }).testConnection();
    await provider({ auth: approle }).testConnection();
    expect(vault.server.seen('health')).toBe(2);
    expect(vault.server.seen('lookup-self')).toBe(1);
    expect(vault.server.seen('login')).toBe(1);
    expect(vault.server.seen('ui-mounts')).toBe(2);
  });

  test.each([
    ['a bad token', { auth: { method: 'token', token: 'nope' } }, 'auth', 'rejected the token'],
    ['a bad AppRole secret_id', { auth: { ...approle, secretId: 'nope' } }, 'auth', 'check the AppRole role_id and secret_id'],
    ['an AppRole mount that does not exist', { auth: { ...approle, mount: 'other' } }, 'config', "no AppRole auth method is mounted at 'auth/other'"],
    ['a mount that does not exist', { auth: token, mount: 'nomount' }, 'config', "no secrets engine is mounted at 'nomount'"],
    ['the wrong KV version', { auth: token, kvVersion: 1 }, 'config', 'is KV v2, configured as v1: set kvVersion to 2'],
  ] as const)('%s', async (_name, config, code, message) => {
    seed();
    vault.addAppRole('drawbridge-role', 'approle-secret-id-123');
    await expectStoreError(provider(config).testConnection(), code, [message], SECRETS);
  });

  test('a token without access to the mount is forbidden', async () => {
    seed();
    vault.addToken('limited-token', ['kv1']);
    await expectStoreError(provider({ auth: { method: 'token', token: 'limited-token' } }).testConnection(), 'forbidden', ["has no access to the mount 'secret'"], SECRETS);
  });

  test('a sealed Vault and a Vault that is down are unreachable', async () => {
    seed();
    vault.sealed = true;
    await expectStoreError(provider({ auth: token }).testConnection(), 'unreachable', ['is sealed: unseal it'], SECRETS);
    vault.sealed = false;
    await expectUnreachableWhileDown(vault.server, () => provider({ auth: token }).testConnection(), SECRETS);
  });

  test('a server that does not answer: our deadline is a timeout, the caller\'s signal a cancellation', async () => {
    const { createServer } = await import('node:net');
    const sockets: import('node:net').Socket[] = [];
    const silent = createServer((s) => sockets.push(s));
    await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
    try {
      const port = (silent.address() as import('node:net').AddressInfo).port;
      const p = secretStores.createProvider({ kind: 'vault', address: `http://127.0.0.1:${port}`, auth: token }, { timeoutMs: 300 });
      providers.push(p);
      await expectStoreError(p.testConnection(), 'timeout', ['did not answer in time'], SECRETS);
      const patient = secretStores.createProvider({ kind: 'vault', address: `http://127.0.0.1:${port}`, auth: token });
      providers.push(patient);
      await expectStoreError(patient.fetch({ path: 'apps/db', key: 'password' }, AbortSignal.timeout(200)), 'timeout', ['was cancelled'], SECRETS);
    } finally {
      for (const s of sockets) s.destroy();
      silent.close();
    }
  });
});

test('an invalid configuration is a config error naming the field', () => {
  expect(() => secretStores.createProvider({ kind: 'vault', address: 'ftp://x', auth: token })).toThrow(/vault: invalid store configuration: address/);
});
