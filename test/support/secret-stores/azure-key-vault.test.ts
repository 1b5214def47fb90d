/**
 * The Azure Key Vault provider (@azure/keyvault-secrets + @azure/identity) against the Key Vault / Entra ID
 * protocol fake over HTTPS with a test CA (caPem), running the SDK's challenge flow.
 */
import { afterAll, afterEach, beforeAll, describe, expect, test } from 'vitest';
import { secretStores } from '../../../console/index.js';
import { createCa, type CertificateAuthority } from '../pki.js';
import { AzureKeyVaultServer } from './azure-key-vault-server.js';
import { expectStoreError, expectUnreachableWhileDown } from './store-assertions.js';

const TENANT = 'contoso-tenant';
const CLIENT_ID = '11111111-2222-3333-4444-555555555555';
const CLIENT_SECRET = 'azure-client-secret~value';
const SECRETS = [CLIENT_SECRET, 'kv-db-password', 'kv-plain-value', 'eyJ0eXAi'];

let ca: CertificateAuthority;
let azure: AzureKeyVaultServer;
const providers: secretStores.SecretProvider[] = [];

function provider(overrides: Partial<secretStores.StoreConfigOf<'azure-key-vault'>> = {}): secretStores.SecretProvider {
  const p = secretStores.createProvider({
    kind: 'azure-key-vault',
    vaultUrl: azure.server.url,
    tenantId: TENANT,
    clientId: CLIENT_ID,
    clientSecret: CLIENT_SECRET,
    authorityHost: azure.server.url,
    disableChallengeResourceVerification: true,
    caPem: ca.cert,
    ...overrides,
  });
  providers.push(p);
  return p;
}

beforeAll(async () => {
  ca = await createCa('Azure fake CA');
  azure = new AzureKeyVaultServer(await ca.issueServerCert({ dnsNames: ['localhost'], ips: ['127.0.0.1'] }));
  await azure.server.listen();
});
afterAll(() => azure.server.close());
afterEach(() => {
  for (const p of providers.splice(0)) p.close();
  azure.reset();
});

function seed(): void {
  azure.addClient(TENANT, CLIENT_ID, CLIENT_SECRET);
  azure.setSecret('db', JSON.stringify({ user: 'app', password: 'kv-db-password' }));
  azure.setSecret('plain', 'kv-plain-value-old');
  azure.setSecret('plain', 'kv-plain-value');
}

describe('fetch', () => {
  test('the challenge flow: 401 challenge, discovery, client credentials token, then the secret', async () => {
    seed();
    const p = provider();
    expect(await p.fetch({ path: 'plain' })).toBe('kv-plain-value');
    expect(azure.server.seen('challenge')).toBe(1);
    expect(azure.server.seen('openid-configuration')).toBeGreaterThanOrEqual(1);
    expect(azure.server.seen('token')).toBe(1);
    expect(azure.server.seen('get')).toBe(1); // the authorised retry of the challenged request
    // The token is reused.
    expect(await p.fetch({ path: 'db', key: 'password' })).toBe('kv-db-password');
    expect(azure.server.seen('token')).toBe(1);
    expect(azure.server.unknown).toEqual([]);
  });

  test('name/version picks a version', async () => {
    seed();
    const version = azure.secrets.get('plain')![0]!.version;
    expect(await provider().fetch({ path: `plain/${version}` })).toBe('kv-plain-value-old');
  });

  test('a missing secret is not_found; a missing key lists the keys', async () => {
    seed();
    await expectStoreError(provider().fetch({ path: 'nope' }), 'not_found', ["secret 'nope' not found in"], SECRETS);
    await expectStoreError(provider().fetch({ path: 'db', key: 'pw' }), 'no_such_key', ["the key 'pw' is not in secret 'db' (keys: user, password)"], SECRETS);
    await expectStoreError(provider().fetch({ path: 'db' }), 'no_such_key', ['keys: user, password'], SECRETS);
  });

  test('a wrong client secret is auth, with Entra ID\'s error code', async () => {
    seed();
    await expectStoreError(provider({ clientSecret: 'wrong-secret' }).fetch({ path: 'plain' }), 'auth', [`client '${CLIENT_ID}' in tenant '${TENANT}'`, 'check tenantId, clientId and clientSecret'], [...SECRETS, 'wrong-secret']);
    expect(azure.server.seen('bad-client-secret')).toBeGreaterThanOrEqual(1);
  });

  test('RBAC denial is forbidden', async () => {
    seed();
    azure.denied.add(CLIENT_ID);
    await expectStoreError(provider().fetch({ path: 'plain' }), 'forbidden', ["may not read secret 'plain'", 'Key Vault Secrets User'], SECRETS);
  });

  test('without caPem the private CA is not trusted: unreachable with a TLS hint', async () => {
    seed();
    await expectStoreError(provider({ caPem: undefined }).fetch({ path: 'plain' }), 'unreachable', ['TLS with', 'caPem'], SECRETS);
  });

  test('with resource verification on, a challenge for another domain is refused as config', async () => {
    seed();
    await expectStoreError(provider({ disableChallengeResourceVerification: false }).fetch({ path: 'plain' }), 'config', ['disableChallengeResourceVerification'], SECRETS);
  });

  test('server down: unreachable, fast', async () => {
    seed();
    await expectUnreachableWhileDown(azure.server, () => provider().fetch({ path: 'plain' }), SECRETS);
  });
});

describe('testConnection', () => {
  test('succeeds by listing one secret', async () => {
    seed();
    await provider().testConnection();
    expect(azure.server.seen('list')).toBe(1);
  });

  test.each([
    ['a wrong client secret', { clientSecret: 'wrong' }, 'auth', 'check tenantId, clientId and clientSecret'],
    ['an unknown tenant', { tenantId: 'other-tenant' }, 'auth', "tenant 'other-tenant'"],
    ['an unknown client', { clientId: 'nobody' }, 'auth', "client 'nobody'"],
  ] as const)('%s', async (_name, overrides, code, message) => {
    seed();
    await expectStoreError(provider(overrides).testConnection(), code, [message], SECRETS);
  });

  test('down is unreachable', async () => {
    seed();
    await expectUnreachableWhileDown(azure.server, () => provider().testConnection(), SECRETS);
  });
});
