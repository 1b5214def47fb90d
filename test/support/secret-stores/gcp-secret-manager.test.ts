/**
 * The GCP Secret Manager provider (@google-cloud/secret-manager in REST fallback mode, google-auth-library JWT
 * client) against the Secret Manager / OAuth protocol fake over HTTPS with a test CA.
 */
import { generateKeyPairSync } from 'node:crypto';
import { afterAll, afterEach, beforeAll, describe, expect, test } from 'vitest';
import { secretStores } from '../../../console/index.js';
import { createCa, type CertificateAuthority } from '../pki.js';
import { GcpSecretManagerServer } from './gcp-secret-manager-server.js';
import { expectStoreError, expectUnreachableWhileDown } from './store-assertions.js';

const EMAIL = 'drawbridge@my-project.iam.gserviceaccount.com';
const keyPair = () => generateKeyPairSync('rsa', { modulusLength: 2048, publicKeyEncoding: { type: 'spki', format: 'pem' }, privateKeyEncoding: { type: 'pkcs8', format: 'pem' } });
const account = keyPair();
const otherKey = keyPair();
const SECRETS = [account.privateKey.split('\n')[1]!, otherKey.privateKey.split('\n')[1]!, 'gcp-db-pw', 'gcp-plain-value', 'ya29.'];

let ca: CertificateAuthority;
let gcp: GcpSecretManagerServer;
const providers: secretStores.SecretProvider[] = [];

function provider(overrides: Partial<secretStores.StoreConfigOf<'gcp-secret-manager'>> = {}): secretStores.SecretProvider {
  const p = secretStores.createProvider({ kind: 'gcp-secret-manager', projectId: 'my-project', clientEmail: EMAIL, privateKey: account.privateKey, apiEndpoint: gcp.server.url, tokenUrl: `${gcp.server.url}/token`, caPem: ca.cert, ...overrides });
  providers.push(p);
  return p;
}

beforeAll(async () => {
  ca = await createCa('GCP fake CA');
  gcp = new GcpSecretManagerServer({ tls: await ca.issueServerCert({ dnsNames: ['localhost'], ips: ['127.0.0.1'] }) });
  await gcp.server.listen();
});
afterAll(() => gcp.server.close());
afterEach(() => {
  for (const p of providers.splice(0)) p.close();
  gcp.reset();
});

function seed(): void {
  gcp.addServiceAccount(EMAIL, account.publicKey);
  gcp.addVersion('my-project', 'db', JSON.stringify({ user: 'app', password: 'gcp-db-pw' }));
  gcp.addVersion('my-project', 'plain', 'gcp-plain-value-v1');
  gcp.addVersion('my-project', 'plain', 'gcp-plain-value');
}

describe('fetch', () => {
  test('a plain value (latest) after a JWT bearer token grant; the token is reused', async () => {
    seed();
    const p = provider();
    expect(await p.fetch({ path: 'plain' })).toBe('gcp-plain-value');
    expect(await p.fetch({ path: 'plain/1' })).toBe('gcp-plain-value-v1');
    expect(gcp.server.seen('token')).toBe(1);
    expect(gcp.server.seen('access')).toBe(2);
    expect(gcp.server.unknown).toEqual([]);
  });

  test('a key of a JSON payload; missing keys list the keys', async () => {
    seed();
    expect(await provider().fetch({ path: 'db', key: 'password' })).toBe('gcp-db-pw');
    await expectStoreError(provider().fetch({ path: 'db', key: 'pw' }), 'no_such_key', ["the key 'pw' is not in secret 'db' (keys: user, password)"], SECRETS);
    await expectStoreError(provider().fetch({ path: 'db' }), 'no_such_key', ['keys: user, password'], SECRETS);
  });

  test('a missing secret or version is not_found', async () => {
    seed();
    await expectStoreError(provider().fetch({ path: 'nope' }), 'not_found', ["secret 'nope' not found in project 'my-project'"], SECRETS);
    await expectStoreError(provider().fetch({ path: 'plain/9' }), 'not_found', ["secret 'plain/9'"], SECRETS);
  });

  test('an assertion signed with another key fails the server\'s RS256 check: auth', async () => {
    seed();
    await expectStoreError(provider({ privateKey: otherKey.privateKey }).fetch({ path: 'plain' }), 'auth', [`service account '${EMAIL}'`, 'invalid_grant', 'check clientEmail and privateKey'], SECRETS);
    expect(gcp.server.seen('bad-assertion')).toBe(1);
    expect(gcp.server.seen('access')).toBe(0);
  });

  test('a denied account is forbidden', async () => {
    seed();
    gcp.denied.add(EMAIL);
    await expectStoreError(provider().fetch({ path: 'plain' }), 'forbidden', ['roles/secretmanager.secretAccessor'], SECRETS);
  });

  test('without caPem the private CA is not trusted: unreachable with a TLS hint', async () => {
    seed();
    await expectStoreError(provider({ caPem: undefined }).fetch({ path: 'plain' }), 'unreachable', ['TLS with', 'caPem'], SECRETS);
  });

  test('server down: unreachable, fast', async () => {
    seed();
    await expectUnreachableWhileDown(gcp.server, () => provider().fetch({ path: 'plain' }), SECRETS);
  });
});

describe('testConnection', () => {
  test('succeeds by listing one secret', async () => {
    seed();
    await provider().testConnection();
    expect(gcp.server.seen('list')).toBe(1);
  });

  test('wrong key → auth; unknown account → auth; denied → forbidden; down → unreachable', async () => {
    seed();
    await expectStoreError(provider({ privateKey: otherKey.privateKey }).testConnection(), 'auth', ['invalid_grant'], SECRETS);
    await expectStoreError(provider({ clientEmail: 'nobody@my-project.iam.gserviceaccount.com' }).testConnection(), 'auth', ["service account 'nobody@"], SECRETS);
    gcp.denied.add(EMAIL);
    await expectStoreError(provider().testConnection(), 'forbidden', ["service account '"], SECRETS);
    await expectUnreachableWhileDown(gcp.server, () => provider().testConnection(), SECRETS);
  });
});
