/**
 * The AWS Secrets Manager and SSM Parameter Store providers (official SDK v3 clients) against the AWS JSON 1.1
 * protocol fake, which verifies every SigV4 signature.
 */
import { afterAll, afterEach, beforeAll, describe, expect, test } from 'vitest';
import { secretStores } from '../../../console/index.js';
import { AwsServer, type AwsService } from './aws-server.js';
import { expectStoreError, expectUnreachableWhileDown } from './store-assertions.js';

const KEY_ID = 'AKIAEXAMPLEDRAWBRIDGE';
const SECRET_KEY = 'wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY';
const SECRETS = [SECRET_KEY, 'db-pass-123', 'plain-api-token', 'session-token-abc'];

const cases: { service: AwsService; kind: 'aws-secrets-manager' | 'aws-ssm'; what: string; listAction: string }[] = [
  { service: 'secretsmanager', kind: 'aws-secrets-manager', what: 'secret', listAction: 'ListSecrets' },
  { service: 'ssm', kind: 'aws-ssm', what: 'parameter', listAction: 'DescribeParameters' },
];

describe.each(cases)('$kind', ({ service, kind, what, listAction }) => {
  let aws: AwsServer;
  const providers: secretStores.SecretProvider[] = [];
  const provider = (overrides: Record<string, string> = {}) => {
    const p = secretStores.createProvider({ kind, region: 'eu-west-1', endpoint: aws.server.url, accessKeyId: KEY_ID, secretAccessKey: SECRET_KEY, ...overrides } as secretStores.StoreConfigInput);
    providers.push(p);
    return p;
  };
  const put = (name: string, value: string) => (service === 'secretsmanager' ? aws.secrets.set(name, value) : aws.parameters.set(name, { value, type: 'SecureString' }));

  beforeAll(async () => {
    aws = new AwsServer(service, 'eu-west-1');
    await aws.server.listen();
  });
  afterAll(() => aws.server.close());
  afterEach(() => {
    for (const p of providers.splice(0)) p.close();
    aws.reset();
  });

  function seed(): void {
    aws.addCredential(KEY_ID, SECRET_KEY);
    put('prod/db', JSON.stringify({ username: 'app', password: 'db-pass-123', port: 5432 }));
    put('prod/api-token', 'plain-api-token');
  }

  test('a plain value, signed with SigV4 and (SSM) decrypted', async () => {
    seed();
    expect(await provider().fetch({ path: 'prod/api-token' })).toBe('plain-api-token');
    expect(aws.server.seen(service === 'ssm' ? 'GetParameter' : 'GetSecretValue')).toBe(1);
    expect(aws.badSignatures).toBe(0);
  });

  test('a key of a JSON value', async () => {
    seed();
    expect(await provider().fetch({ path: 'prod/db', key: 'password' })).toBe('db-pass-123');
    expect(await provider().fetch({ path: 'prod/db', key: 'port' })).toBe('5432');
  });

  test('a JSON value without a key, and a missing key, list the keys', async () => {
    seed();
    await expectStoreError(provider().fetch({ path: 'prod/db' }), 'no_such_key', ['keys: username, password, port'], SECRETS);
    await expectStoreError(provider().fetch({ path: 'prod/db', key: 'pw' }), 'no_such_key', ["the key 'pw' is not in secret 'prod/db' (keys: username, password, port)"], SECRETS);
    await expectStoreError(provider().fetch({ path: 'prod/api-token', key: 'pw' }), 'no_such_key', ['is a plain value, not a JSON object'], SECRETS);
  });

  test('a missing value is not_found', async () => {
    seed();
    await expectStoreError(provider().fetch({ path: 'prod/nope' }), 'not_found', [`${what} 'prod/nope' not found in eu-west-1`], SECRETS);
  });

  test('a wrong secret access key fails the server\'s signature check: auth', async () => {
    seed();
    await expectStoreError(provider({ secretAccessKey: 'not-the-right-key' }).fetch({ path: 'prod/api-token' }), 'auth', [`access key '${KEY_ID}'`, 'InvalidSignatureException', 'check accessKeyId, secretAccessKey'], [...SECRETS, 'not-the-right-key']);
    expect(aws.badSignatures).toBeGreaterThan(0);
  });

  test('an unknown access key id is auth (UnrecognizedClientException); a wrong region fails the credential scope', async () => {
    seed();
    await expectStoreError(provider({ accessKeyId: 'AKIAUNKNOWN' }).fetch({ path: 'prod/api-token' }), 'auth', ['UnrecognizedClientException'], SECRETS);
    await expectStoreError(provider({ region: 'us-east-1' }).fetch({ path: 'prod/api-token' }), 'auth', ['InvalidSignatureException', 'region'], SECRETS);
  });

  test('a session token must be sent and signed when the credential has one', async () => {
    aws.addCredential(KEY_ID, SECRET_KEY, { sessionToken: 'session-token-abc' });
    put('prod/api-token', 'plain-api-token');
    await expectStoreError(provider().fetch({ path: 'prod/api-token' }), 'auth', ['UnrecognizedClientException'], SECRETS);
    expect(await provider({ sessionToken: 'session-token-abc' }).fetch({ path: 'prod/api-token' })).toBe('plain-api-token');
  });

  test('a key the IAM policy does not cover is forbidden', async () => {
    seed();
    aws.addCredential('AKIALIMITED', SECRET_KEY, { allow: ['prod/other'] });
    await expectStoreError(provider({ accessKeyId: 'AKIALIMITED' }).fetch({ path: 'prod/db', key: 'password' }), 'forbidden', ["access key 'AKIALIMITED' may not read", 'AccessDeniedException'], SECRETS);
  });

  test('server down: unreachable, fast', async () => {
    seed();
    await expectUnreachableWhileDown(aws.server, () => provider().fetch({ path: 'prod/api-token' }), SECRETS);
  });

  test(`testConnection: ${listAction} succeeds; bad signature, missing permission and down each say so`, async () => {
    seed();
    await provider().testConnection();
    expect(aws.server.seen(listAction)).toBe(1);
    await expectStoreError(provider({ secretAccessKey: 'wrong' }).testConnection(), 'auth', ['InvalidSignatureException'], SECRETS);
    aws.addCredential('AKIALIMITED', SECRET_KEY, { allow: ['prod/db'] });
    await expectStoreError(provider({ accessKeyId: 'AKIALIMITED' }).testConnection(), 'forbidden', [listAction === 'ListSecrets' ? 'secretsmanager:ListSecrets' : 'ssm:DescribeParameters'], SECRETS);
    await expectUnreachableWhileDown(aws.server, () => provider().testConnection(), SECRETS);
  });
});
