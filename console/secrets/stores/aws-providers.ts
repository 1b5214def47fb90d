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
 */
import { GetSecretValueCommand, ListSecretsCommand, SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { DescribeParametersCommand, GetParameterCommand, SSMClient } from '@aws-sdk/client-ssm';
import type { SecretProvider, SecretRef } from './secret-provider.js';
import type { StoreConfigOf } from './store-config.js';
import { deadlineSignal, StoreError, transportError } from './store-error.js';
import { selectFromText } from './select-key.js';

type AwsKind = 'aws-secrets-manager' | 'aws-ssm';
type AwsConfig = StoreConfigOf<AwsKind>;

const AUTH_ERRORS = new Set(['UnrecognizedClientException', 'InvalidSignatureException', 'InvalidClientTokenId', 'IncompleteSignature', 'ExpiredTokenException', 'SignatureDoesNotMatch', 'MissingAuthenticationToken']);
const FORBIDDEN_ERRORS = new Set(['AccessDeniedException', 'AccessDenied', 'DecryptionFailure', 'KMSAccessDeniedException']);
const NOT_FOUND_ERRORS = new Set(['ResourceNotFoundException', 'ParameterNotFound', 'ParameterVersionNotFound']);

function clientConfig(config: AwsConfig, timeoutMs: number) {
  return {
    region: config.region,
    ...(config.endpoint ? { endpoint: config.endpoint } : {}),
    credentials: { accessKeyId: config.accessKeyId, secretAccessKey: config.secretAccessKey, ...(config.sessionToken ? { sessionToken: config.sessionToken } : {}) },
    maxAttempts: 2,
    requestHandler: { connectionTimeout: Math.min(timeoutMs, 3_000), requestTimeout: timeoutMs },
  };
}

/** What the two AWS providers share: running a command under the deadline and mapping AWS errors. */
abstract class AwsProvider implements SecretProvider {
  abstract readonly kind: AwsKind;
  protected readonly address: string;

  protected constructor(protected readonly config: AwsConfig, protected readonly timeoutMs: number, service: string) {
    this.address = config.endpoint ? new URL(config.endpoint).origin : `${service}.${config.region}.amazonaws.com`;
  }

  abstract fetch(ref: SecretRef, signal?: AbortSignal): Promise<string>;
  abstract testConnection(signal?: AbortSignal): Promise<void>;
  abstract close(): void;

  /** Runs `send` under the deadline; `what` names the secret (or the probe) in error messages. */
  protected async run<T>(what: string, send: (abortSignal: AbortSignal) => Promise<T>, caller: AbortSignal | undefined): Promise<T> {
    const signals = deadlineSignal(this.timeoutMs, caller);
    try {
      return await send(signals.signal);
    } catch (error) {
      throw this.mapError(what, error, signals);
    }
  }

  private mapError(what: string, error: unknown, signals: ReturnType<typeof deadlineSignal>): StoreError {
    const name = (error as { name?: string }).name ?? '';
    const status = (error as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode;
    if (status !== undefined || AUTH_ERRORS.has(name) || FORBIDDEN_ERRORS.has(name) || NOT_FOUND_ERRORS.has(name)) {
      if (AUTH_ERRORS.has(name)) return new StoreError('auth', this.kind, `AWS rejected the credentials of access key '${this.config.accessKeyId}' at ${this.address} (${name}): check accessKeyId, secretAccessKey${this.config.sessionToken ? ', sessionToken (it may have expired)' : ''} and region`);
      if (FORBIDDEN_ERRORS.has(name)) return new StoreError('forbidden', this.kind, `access key '${this.config.accessKeyId}' may not ${what} (${name}): grant it in the IAM policy${name === 'DecryptionFailure' || name.startsWith('KMS') ? ' and the KMS key policy' : ''}`);
      if (NOT_FOUND_ERRORS.has(name)) return new StoreError('not_found', this.kind, `${what.replace(/^read /, '')} not found in ${this.config.region} at ${this.address}`);
      return new StoreError('bad_response', this.kind, `AWS answered ${name || 'an error'} (HTTP ${status ?? '?'}) to ${what} at ${this.address}`);
    }
    return transportError(this.kind, this.address, error, signals) ?? new StoreError('bad_response', this.kind, `the request to ${this.address} failed (${name || 'unknown error'})`);
  }
}

export class AwsSecretsManagerProvider extends AwsProvider {
  readonly kind = 'aws-secrets-manager' as const;
  readonly #client: SecretsManagerClient;

  constructor(config: StoreConfigOf<'aws-secrets-manager'>, timeoutMs: number) {
    super(config, timeoutMs, 'secretsmanager');
    this.#client = new SecretsManagerClient(clientConfig(config, timeoutMs));
  }

  async fetch(ref: SecretRef, signal?: AbortSignal): Promise<string> {
    const out = await this.run(`read secret '${ref.path}'`, (abortSignal) => this.#client.send(new GetSecretValueCommand({ SecretId: ref.path }), { abortSignal }), signal);
    const text = out.SecretString ?? (out.SecretBinary ? Buffer.from(out.SecretBinary).toString('utf8') : undefined);
    if (text === undefined) throw new StoreError('bad_response', this.kind, `secret '${ref.path}' came back without SecretString or SecretBinary`);
    return selectFromText(this.kind, ref.path, text, ref.key);
  }

  async testConnection(signal?: AbortSignal): Promise<void> {
    await this.run('list secrets (secretsmanager:ListSecrets)', (abortSignal) => this.#client.send(new ListSecretsCommand({ MaxResults: 1 }), { abortSignal }), signal);
  }

  close(): void {
    this.#client.destroy();
  }
}

export class AwsSsmProvider extends AwsProvider {
  readonly kind = 'aws-ssm' as const;
  readonly #client: SSMClient;

  constructor(config: StoreConfigOf<'aws-ssm'>, timeoutMs: number) {
    super(config, timeoutMs, 'ssm');
    this.#client = new SSMClient(clientConfig(config, timeoutMs));
  }

  async fetch(ref: SecretRef, signal?: AbortSignal): Promise<string> {
    const out = await this.run(`read parameter '${ref.path}'`, (abortSignal) => this.#client.send(new GetParameterCommand({ Name: ref.path, WithDecryption: true }), { abortSignal }), signal);
    const value = out.Parameter?.Value;
    if (value === undefined) throw new StoreError('bad_response', this.kind, `parameter '${ref.path}' came back without a Value`);
    return selectFromText(this.kind, ref.path, value, ref.key);
  }

  async testConnection(signal?: AbortSignal): Promise<void> {
    await this.run('describe parameters (ssm:DescribeParameters)', (abortSignal) => this.#client.send(new DescribeParametersCommand({ MaxResults: 1 }), { abortSignal }), signal);
  }

  close(): void {
    this.#client.destroy();
  }
}
