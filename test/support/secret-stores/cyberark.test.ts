/** The CyberArk CCP provider against the CCP protocol fake, over HTTP and over mutual TLS with a test CA. */
import { afterAll, afterEach, beforeAll, describe, expect, test } from 'vitest';
import { secretStores } from '../../../console/index.js';
import { createCa, type CertificateAuthority, type Pem } from '../pki.js';
import { CyberArkServer } from './cyberark-server.js';
import { expectStoreError, expectUnreachableWhileDown } from './store-assertions.js';

const SECRETS = ['ccp-db-password', 'ccp-other-password'];

let ccp: CyberArkServer;
let mtls: CyberArkServer;
let ca: CertificateAuthority;
let client: Pem;
const providers: secretStores.SecretProvider[] = [];

function provider(overrides: Partial<secretStores.StoreConfigOf<'cyberark'>> = {}, server = ccp): secretStores.SecretProvider {
  const p = secretStores.createProvider({ kind: 'cyberark', url: server.server.url, appId: 'drawbridge', safe: 'AppSafe', ...overrides });
  providers.push(p);
  return p;
}

function seed(server: CyberArkServer): void {
  server.addAccount('AppSafe', 'db-prod', { Content: 'ccp-db-password', UserName: 'dbuser', Address: 'db.example.com' });
  server.addAccount('OtherSafe', 'db-other', { Content: 'ccp-other-password', UserName: 'other' });
}

beforeAll(async () => {
  ca = await createCa('CCP fake CA');
  client = await ca.issueClientCert({ user: 'drawbridge-console', groups: [] });
  ccp = new CyberArkServer();
  await ccp.server.listen();
  mtls = new CyberArkServer({ tls: { ...(await ca.issueServerCert({ dnsNames: ['localhost'], ips: ['127.0.0.1'] })), ca: ca.cert, requestCert: true } });
  await mtls.server.listen();
});
afterAll(async () => {
  await ccp.server.close();
  await mtls.server.close();
});
afterEach(() => {
  for (const p of providers.splice(0)) p.close();
  ccp.reset();
  mtls.reset();
});

describe('fetch', () => {
  test('the password (Content) by default, another property with key, and Safe/Object paths', async () => {
    seed(ccp);
    ccp.apps.set('drawbridge', { safes: ['AppSafe', 'OtherSafe'] });
    expect(await provider().fetch({ path: 'db-prod' })).toBe('ccp-db-password');
    expect(await provider().fetch({ path: 'db-prod', key: 'UserName' })).toBe('dbuser');
    expect(await provider().fetch({ path: 'OtherSafe/db-other' })).toBe('ccp-other-password');
    expect(ccp.server.seen('accounts')).toBe(3);
  });

  test('a missing object is not_found with CCP\'s code; a missing property lists the properties', async () => {
    seed(ccp);
    ccp.apps.set('drawbridge', { safes: ['AppSafe'] });
    await expectStoreError(provider().fetch({ path: 'nope' }), 'not_found', ["secret 'nope' not found by CCP", 'APPAP004E'], SECRETS);
    await expectStoreError(provider().fetch({ path: 'db-prod', key: 'Password' }), 'no_such_key', ["the key 'Password' is not in secret 'db-prod' (keys: Safe, Folder, Name, PolicyID, DeviceType, Content, UserName, Address)"], SECRETS);
  });

  test('an unknown AppID, or a Safe the application may not use, is auth', async () => {
    seed(ccp);
    ccp.apps.set('drawbridge', { safes: ['AppSafe'] });
    await expectStoreError(provider({ appId: 'intruder' }).fetch({ path: 'db-prod' }), 'auth', ["refused application 'intruder'", 'APPAP306E', 'check the AppID'], SECRETS);
    await expectStoreError(provider().fetch({ path: 'OtherSafe/db-other' }), 'auth', ['APPAP306E'], SECRETS);
  });

  test('mutual TLS: the client certificate authenticates the application; caPem trusts the server', async () => {
    seed(mtls);
    mtls.apps.set('drawbridge', { safes: ['AppSafe'], certificateCn: 'drawbridge-console' });
    expect(await provider({ caPem: ca.cert, clientCertPem: client.cert, clientKeyPem: client.key }, mtls).fetch({ path: 'db-prod' })).toBe('ccp-db-password');
    await expectStoreError(provider({ caPem: ca.cert }, mtls).fetch({ path: 'db-prod' }), 'auth', ['APPAP306E'], SECRETS);
    await expectStoreError(provider({ clientCertPem: client.cert, clientKeyPem: client.key }, mtls).fetch({ path: 'db-prod' }), 'unreachable', ['TLS with', 'caPem'], SECRETS);
  });

  test('server down: unreachable, fast', async () => {
    await expectUnreachableWhileDown(ccp.server, () => provider().fetch({ path: 'db-prod' }), SECRETS);
  });
});

describe('testConnection', () => {
  test('succeeds when CCP answers "not found" for the probe object', async () => {
    seed(ccp);
    ccp.apps.set('drawbridge', { safes: ['AppSafe'] });
    await provider().testConnection();
    expect(ccp.server.seen('accounts')).toBe(1);
  });

  test('an unknown application and a server that is down say so', async () => {
    ccp.apps.set('drawbridge', { safes: ['AppSafe'] });
    await expectStoreError(provider({ appId: 'intruder' }).testConnection(), 'auth', ["refused application 'intruder'"], SECRETS);
    await expectStoreError(provider({ safe: 'OtherSafe' }).testConnection(), 'auth', ["the Safe 'OtherSafe'"], SECRETS);
    await expectUnreachableWhileDown(ccp.server, () => provider().testConnection(), SECRETS);
  });

  test('an address that is not CCP is a bad_response', async () => {
    await expectStoreError(provider({ url: `${ccp.server.url}/wrong` }).testConnection(), 'bad_response', ['is this CCP'], SECRETS);
  });
});
