/**
 * AWS Secrets Manager and AWS Systems Manager Parameter Store, through the official AWS SDK v3 clients
 * (@aws-sdk/client-secrets-manager, @aws-sdk/client-ssm): SigV4 signing, endpoints and error shapes are theirs.
 *
 * - Secrets Manager: GetSecretValue(SecretId = path); a SecretString holding a JSON object is structured
 *   (`key` picks a field), anything else plain; a SecretBinary is returned as UTF-8 text.
 * - Parameter Store: GetParameter(Name = path, WithDecryption) so SecureString parameters come back decrypted.
 * - testConnection lists one secret / describes one parameter: that proves the endpoint, the credentials and
 *   the list permission (secretsmanager:ListSecrets, ssm:DescribeParameters).
 * - Two attempts at most and short connection timeouts: a store that is down fails fast; the sync retries later.
 * - The two services differ only in the table below (client, read call, probe call); one class runs both.
 */
import { GetSecretValueCommand, ListSecretsCommand, SecretsManagerClient, type SecretsManagerClientConfig } from '@aws-sdk/client-secrets-manager';
import { DescribeParametersCommand, GetParameterCommand, SSMClient, type SSMClientConfig } from '@aws-sdk/client-ssm';
import type { SecretProvider, SecretRef } from './secret-provider.js';
import type { StoreConfigOf } from './store-config.js';
import { StoreError, transportError, underDeadline } from './store-error.js';
import { selectFromText } from './select-key.js';

type AwsKind = 'aws-secrets-manager' | 'aws-ssm';
type AwsConfig = StoreConfigOf<AwsKind>;

const AUTH_ERRORS = new Set(['UnrecognizedClientException', 'InvalidSignatureException', 'InvalidClientTokenId', 'IncompleteSignature', 'ExpiredTokenException', 'SignatureDoesNotMatch', 'MissingAuthenticationToken', 'MissingAuthenticationTokenException']);
const FORBIDDEN_ERRORS = new Set(['AccessDeniedException', 'AccessDenied', 'DecryptionFailure', 'KMSAccessDeniedException']);
const NOT_FOUND_ERRORS = new Set(['ResourceNotFoundException', 'ParameterNotFound', 'ParameterVersionNotFound']);

interface AwsClient {
  destroy(): void;
}

interface AwsService<C extends AwsClient> {
  /** The endpoint prefix, for the default address. */
  readonly endpointPrefix: string;
  /** What a path names, in messages. */
  readonly noun: string;
  readonly create: (config: SecretsManagerClientConfig & SSMClientConfig) => C;
  /** The value at `path`, undefined when the answer has none. */
  readonly read: (client: C, path: string, abortSignal: AbortSignal) => Promise<string | undefined>;
  readonly probe: { readonly action: string; readonly send: (client: C, abortSignal: AbortSignal) => Promise<unknown> };
}

const SERVICES: { [K in AwsKind]: AwsService<K extends 'aws-ssm' ? SSMClient : SecretsManagerClient> } = {
  'aws-secrets-manager': {
    endpointPrefix: 'secretsmanager',
    noun: 'secret',
    create: (c) => new SecretsManagerClient(c),
    read: async (client, path, abortSignal) => {
      const out = await client.send(new GetSecretValueCommand({ SecretId: path }), { abortSignal });
      return out.SecretString ?? (out.SecretBinary ? Buffer.from(out.SecretBinary).toString('utf8') : undefined);
    },
    probe: { action: 'secretsmanager:ListSecrets', send: (client, abortSignal) => client.send(new ListSecretsCommand({ MaxResults: 1 }), { abortSignal }) },
  },
  'aws-ssm': {
    endpointPrefix: 'ssm',
    noun: 'parameter',
    create: (c) => new SSMClient(c),
    read: async (client, path, abortSignal) => (await client.send(new GetParameterCommand({ Name: path, WithDecryption: true }), { abortSignal })).Parameter?.Value,
    probe: { action: 'ssm:DescribeParameters', send: (client, abortSignal) => client.send(new DescribeParametersCommand({ MaxResults: 1 }), { abortSignal }) },
  },
};

export class AwsProvider implements SecretProvider {
  readonly kind: AwsKind;
  readonly #service: AwsService<AwsClient>;
  readonly #client: AwsClient;
  readonly #address: string;

  constructor(private readonly config: AwsConfig, private readonly timeoutMs: number) {
    this.kind = config.kind;
    this.#service = SERVICES[config.kind] as unknown as AwsService<AwsClient>;
    this.#address = config.endpoint ? new URL(config.endpoint).origin : `${this.#service.endpointPrefix}.${config.region}.amazonaws.com`;
    this.#client = this.#service.create({
      region: config.region,
      ...(config.endpoint ? { endpoint: config.endpoint } : {}),
      credentials: { accessKeyId: config.accessKeyId, secretAccessKey: config.secretAccessKey, ...(config.sessionToken ? { sessionToken: config.sessionToken } : {}) },
      maxAttempts: 2,
      requestHandler: { connectionTimeout: Math.min(timeoutMs, 3_000), requestTimeout: timeoutMs },
    });
  }

  async fetch(ref: SecretRef, signal?: AbortSignal): Promise<string> {
    const what = `${this.#service.noun} '${ref.path}'`;
    const text = await underDeadline(this.timeoutMs, signal, (s) => this.#service.read(this.#client, ref.path, s), (e, signals) => this.#mapError(`read ${what}`, e, signals));
    if (text === undefined) throw new StoreError('bad_response', this.kind, `${what} came back without a value`);
    return selectFromText(this.kind, ref.path, text, ref.key);
  }

  async testConnection(signal?: AbortSignal): Promise<void> {
    const { action, send } = this.#service.probe;
    await underDeadline(this.timeoutMs, signal, (s) => send(this.#client, s), (e, signals) => this.#mapError(`call ${action}`, e, signals));
  }

  close(): void {
    this.#client.destroy();
  }

  #mapError(what: string, error: unknown, signals: Parameters<typeof transportError>[3]): StoreError {
    const { accessKeyId, sessionToken, region } = this.config;
    const name = (error as { name?: string }).name ?? '';
    const status = (error as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode;
    if (AUTH_ERRORS.has(name)) return new StoreError('auth', this.kind, `AWS rejected the credentials of access key '${accessKeyId}' at ${this.#address} (${name}): check accessKeyId, secretAccessKey${sessionToken ? ', sessionToken (it may have expired)' : ''} and region`);
    if (FORBIDDEN_ERRORS.has(name)) return new StoreError('forbidden', this.kind, `access key '${accessKeyId}' may not ${what} (${name}): grant it in the IAM policy${name === 'DecryptionFailure' || name.startsWith('KMS') ? ' and the KMS key policy' : ''}`);
    if (NOT_FOUND_ERRORS.has(name)) return new StoreError('not_found', this.kind, `${what.replace(/^read /, '')} not found in ${region} at ${this.#address}`);
    if (status !== undefined) return new StoreError('bad_response', this.kind, `AWS answered ${name || 'an error'} (HTTP ${status}) to ${what} at ${this.#address}`);
    return transportError(this.kind, this.#address, error, signals) ?? new StoreError('bad_response', this.kind, `the request to ${this.#address} failed (${name || 'unknown error'})`);
  }
}
