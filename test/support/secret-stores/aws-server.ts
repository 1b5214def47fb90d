/**
 * A protocol fake of AWS Secrets Manager and AWS Systems Manager Parameter Store: no AWS endpoint can be reached
 * from here, so this speaks the AWS JSON 1.1 protocol the official SDK uses
 * (https://smithy.io/2.0/aws/protocols/aws-json-1_1-protocol.html): `POST /`, `X-Amz-Target:
 * secretsmanager.GetSecretValue` / `AmazonSSM.GetParameter`, `application/x-amz-json-1.1` bodies, errors as
 * `{"__type": …, "message": …}` with status 400.
 *
 * Every request's Signature Version 4 is verified for real, per
 * https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_sigv-create-signed-request.html: the canonical
 * request is rebuilt from what arrived (method, path, query, the signed headers, SHA-256 of the body), the
 * signature recomputed with the secret key of the access key id and compared in constant time; the credential
 * scope must name this region and service and a date within 15 minutes. An unknown access key id is
 * `UnrecognizedClientException`, a wrong signature `InvalidSignatureException`, as AWS answers.
 *
 * Actions: Secrets Manager GetSecretValue and ListSecrets (API reference: GetSecretValue, ListSecrets); SSM
 * GetParameter (SecureString values are returned encrypted-looking unless WithDecryption) and
 * DescribeParameters.
 */
import { createHash, createHmac, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { ProtocolServer, sendJson } from './protocol-server.js';

export type AwsService = 'secretsmanager' | 'ssm';

interface Credential {
  readonly secretAccessKey: string;
  readonly sessionToken?: string;
  /** Secret/parameter names this key may read; '*' for all. */
  readonly allow: readonly string[] | '*';
}

const TARGET_PREFIX: Record<AwsService, string> = { secretsmanager: 'secretsmanager.', ssm: 'AmazonSSM.' };
const SKEW_MS = 15 * 60_000;
const ACCOUNT = '123456789012';

const sha256 = (data: string | Buffer) => createHash('sha256').update(data).digest('hex');
const hmac = (key: string | Buffer, data: string) => createHmac('sha256', key).update(data).digest();
/** RFC 3986 encoding as SigV4 wants it. */
const uriEncode = (s: string) => encodeURIComponent(s).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);

export class AwsServer {
  readonly server: ProtocolServer;
  readonly credentials = new Map<string, Credential>();
  /** Secrets Manager: name → SecretString. */
  readonly secrets = new Map<string, string>();
  /** SSM: name → parameter. */
  readonly parameters = new Map<string, { value: string; type: 'String' | 'SecureString' | 'StringList' }>();
  /** Signatures that failed verification. */
  badSignatures = 0;

  constructor(readonly service: AwsService, readonly region = 'eu-west-1') {
    this.server = new ProtocolServer((req, body, res) => this.#handle(req, body, res));
  }

  /** Back to empty: no credentials, secrets or parameters; counters cleared. */
  reset(): void {
    this.credentials.clear();
    this.secrets.clear();
    this.parameters.clear();
    this.badSignatures = 0;
    this.server.resetCounts();
  }

  addCredential(accessKeyId: string, secretAccessKey: string, options: { sessionToken?: string; allow?: readonly string[] | '*' } = {}): void {
    this.credentials.set(accessKeyId, { secretAccessKey, ...(options.sessionToken ? { sessionToken: options.sessionToken } : {}), allow: options.allow ?? '*' });
  }

  #error(res: ServerResponse, type: string, message: string, status = 400): void {
    sendJson(res, status, { __type: type, message }, { 'x-amzn-errortype': `${type}:`, 'x-amzn-requestid': '00000000-0000-0000-0000-000000000000' }, 'application/x-amz-json-1.1');
  }

  /** The access key's credential when the SigV4 signature is right; otherwise answers the error and returns undefined. */
  #verify(req: IncomingMessage, body: Buffer, res: ServerResponse): [string, Credential] | undefined {
    const auth = req.headers.authorization ?? '';
    const match = /^AWS4-HMAC-SHA256 Credential=([^/]+)\/(\d{8})\/([^/]+)\/([^/]+)\/aws4_request, ?SignedHeaders=([a-z0-9;-]+), ?Signature=([0-9a-f]{64})$/.exec(auth);
    if (!match) {
      this.#error(res, 'MissingAuthenticationTokenException', 'Missing Authentication Token');
      return undefined;
    }
    const [, accessKeyId, date, region, service, signedHeaders, signature] = match as unknown as [string, string, string, string, string, string, string];
    const credential = this.credentials.get(accessKeyId);
    if (!credential) {
      this.#error(res, 'UnrecognizedClientException', 'The security token included in the request is invalid.');
      return undefined;
    }
    const amzDate = String(req.headers['x-amz-date'] ?? '');
    const when = Date.parse(amzDate.replace(/^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/, '$1-$2-$3T$4:$5:$6Z'));
    if (!amzDate.startsWith(date) || Number.isNaN(when) || Math.abs(Date.now() - when) > SKEW_MS) {
      this.#error(res, 'InvalidSignatureException', 'Signature expired or not yet valid (X-Amz-Date out of the 15 minute window).');
      return undefined;
    }
    if (region !== this.region || service !== this.service) {
      this.#error(res, 'InvalidSignatureException', `Credential should be scoped to a valid region and service: '${this.region}', '${this.service}'.`);
      return undefined;
    }
    const signed = signedHeaders.split(';');
    if (!signed.includes('host') || !signed.includes('x-amz-date')) {
      this.#error(res, 'InvalidSignatureException', "'Host' and 'X-Amz-Date' must be signed.");
      return undefined;
    }
    const url = new URL(req.url ?? '/', 'http://aws');
    const query = [...url.searchParams].map(([k, v]) => [uriEncode(k), uriEncode(v)] as const).sort(([a, x], [b, y]) => (a === b ? (x < y ? -1 : 1) : a < b ? -1 : 1)).map(([k, v]) => `${k}=${v}`).join('&');
    const headerValue = (name: string) => {
      const raw = req.headersDistinct[name];
      return raw ? raw.map((v) => v.trim().replace(/\s+/g, ' ')).join(',') : '';
    };
    const canonicalRequest = [req.method, url.pathname.split('/').map((seg) => uriEncode(decodeURIComponent(seg))).join('/'), query, signed.map((h) => `${h}:${headerValue(h)}\n`).join(''), signedHeaders, sha256(body)].join('\n');
    const scope = `${date}/${region}/${service}/aws4_request`;
    const stringToSign = ['AWS4-HMAC-SHA256', amzDate, scope, sha256(canonicalRequest)].join('\n');
    const key = hmac(hmac(hmac(hmac(`AWS4${credential.secretAccessKey}`, date), region), service), 'aws4_request');
    const expected = Buffer.from(createHmac('sha256', key).update(stringToSign).digest('hex'));
    if (!timingSafeEqual(expected, Buffer.from(signature))) {
      this.badSignatures++;
      this.#error(res, 'InvalidSignatureException', 'The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for details.');
      return undefined;
    }
    if (credential.sessionToken !== undefined && (req.headers['x-amz-security-token'] !== credential.sessionToken || !signed.includes('x-amz-security-token'))) {
      this.#error(res, 'UnrecognizedClientException', 'The security token included in the request is invalid.');
      return undefined;
    }
    return [accessKeyId, credential];
  }

  #handle(req: IncomingMessage, body: Buffer, res: ServerResponse): void {
    const target = String(req.headers['x-amz-target'] ?? '');
    const prefix = TARGET_PREFIX[this.service];
    if (req.method !== 'POST' || new URL(req.url ?? '/', 'http://aws').pathname !== '/' || !target.startsWith(prefix)) {
      this.server.unknown.push(`${req.method} ${req.url} ${target}`);
      return this.#error(res, 'UnknownOperationException', '');
    }
    if (!String(req.headers['content-type'] ?? '').startsWith('application/x-amz-json-1.1')) return this.#error(res, 'SerializationException', 'Expected application/x-amz-json-1.1');
    const action = target.slice(prefix.length);
    this.server.count(action);
    const verified = this.#verify(req, body, res);
    if (!verified) return;
    const [accessKeyId, credential] = verified;
    let input: Record<string, unknown>;
    try {
      input = JSON.parse(body.toString('utf8') || '{}') as Record<string, unknown>;
    } catch {
      return this.#error(res, 'SerializationException', 'Start of structure or map found where not expected.');
    }
    const may = (name: string) => credential.allow === '*' || credential.allow.includes(name);
    const arn = (kind: string, name: string) => `arn:aws:${this.service}:${this.region}:${ACCOUNT}:${kind}${name}`;
    const denied = (op: string, resource: string) => this.#error(res, 'AccessDeniedException', `User: arn:aws:iam::${ACCOUNT}:user/${accessKeyId} is not authorized to perform: ${op} on resource: ${resource} because no identity-based policy allows the ${op} action`);
    const reply = (out: unknown) => sendJson(res, 200, out, {}, 'application/x-amz-json-1.1');

    switch (`${this.service}:${action}`) {
      case 'secretsmanager:GetSecretValue': {
        const id = String(input['SecretId'] ?? '');
        if (!may(id)) return denied('secretsmanager:GetSecretValue', arn('secret:', id));
        const value = this.secrets.get(id);
        if (value === undefined) return this.#error(res, 'ResourceNotFoundException', "Secrets Manager can't find the specified secret.");
        return reply({ ARN: arn('secret:', `${id}-AbCdEf`), Name: id, VersionId: '11111111-2222-3333-4444-555555555555', SecretString: value, VersionStages: ['AWSCURRENT'], CreatedDate: 1_700_000_000 });
      }
      case 'secretsmanager:ListSecrets': {
        if (credential.allow !== '*') return denied('secretsmanager:ListSecrets', '*');
        const max = Number(input['MaxResults'] ?? 100);
        return reply({ SecretList: [...this.secrets.keys()].slice(0, max).map((name) => ({ ARN: arn('secret:', `${name}-AbCdEf`), Name: name })) });
      }
      case 'ssm:GetParameter': {
        const name = String(input['Name'] ?? '');
        if (!may(name)) return denied('ssm:GetParameter', arn('parameter', name.startsWith('/') ? name : `/${name}`));
        const parameter = this.parameters.get(name);
        if (!parameter) return this.#error(res, 'ParameterNotFound', '');
        const value = parameter.type === 'SecureString' && input['WithDecryption'] !== true ? Buffer.from(`kms-ciphertext:${parameter.value}`).toString('base64') : parameter.value;
        return reply({ Parameter: { Name: name, Type: parameter.type, Value: value, Version: 1, LastModifiedDate: 1_700_000_000, ARN: arn('parameter', name.startsWith('/') ? name : `/${name}`), DataType: 'text' } });
      }
      case 'ssm:DescribeParameters': {
        if (credential.allow !== '*') return denied('ssm:DescribeParameters', '*');
        const max = Number(input['MaxResults'] ?? 50);
        return reply({ Parameters: [...this.parameters].slice(0, max).map(([name, p]) => ({ Name: name, Type: p.type, Version: 1 })) });
      }
      default:
        this.server.unknown.push(target);
        return this.#error(res, 'UnknownOperationException', '');
    }
  }
}
