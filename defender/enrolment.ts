/**
 * Enrolment with the Console, and the state it leaves in the state directory.
 *
 * - The Defender makes both keys itself (ECDSA P-256, WebCrypto) and sends only CSRs with the join token
 *   (`POST /api/v1/defenders/enroll`); private keys never leave the machine.
 * - The answer is checked before anything is saved: the certificates must carry our public keys and chain to the
 *   CA that came with them. Afterwards only that CA is trusted for the Console.
 * - Saved in the state directory (0700, files 0600, each written atomically; `state.json` last, so a crash in
 *   the middle leaves the previous enrolment or none): ca.pem, server-cert.pem, server-key.pem, client-cert.pem,
 *   client-key.pem, state.json.
 * - A later start reuses the state; a join token given again is ignored unless `--re-enroll` asks for a new
 *   enrolment (which also drops the policy cache of the old one; the audit spool is kept and delivered).
 * - Renewed certificates (certificate-renewal.ts) replace four files and state.json together: they are staged in
 *   `renewal.pending/` (each file atomic, 0600), a READY mark is written last, then each is renamed into place.
 *   Loading finishes a staged renewal that has its mark and discards one that has not, so a crash at any point
 *   leaves either the old pairs or the new ones, never a key next to the other key's certificate.
 */
// @peculiar/x509 resolves its algorithm providers through tsyringe, which needs the Reflect metadata polyfill.
import 'reflect-metadata';
import { webcrypto, X509Certificate } from 'node:crypto';
import { existsSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { hostname as osHostname } from 'node:os';
import { join } from 'node:path';
import * as x509 from '@peculiar/x509';
import { EC_KEY_ALGORITHM, SIGNING_ALGORITHM } from '../shared/identity/certificate-profiles.js';
import { enrollResponse, hostName as hostNameSchema, type EnrollRequest, type ListenerConfig } from '../shared/wire/defender-console.js';
import type { ConsoleModeConfig } from './config.js';
import { DEFENDER_VERSION } from './config.js';
import { consoleLink } from './console-link.js';
import { defenderErrors } from './errors.js';
import { ensurePrivateDir, syncDir, writeFileAtomic } from './fs-atomic.js';
import type { Logger } from './log.js';
import { CACHE_FILE } from './policy-cache.js';

x509.cryptoProvider.set(webcrypto);

export interface Enrolment {
  readonly consoleUrl: string;
  readonly hostName: string;
  /** The Console's CA: what the Console's certificate and user certificates chain to. */
  readonly ca: string;
  readonly serverCert: string;
  readonly serverKey: string;
  readonly clientCert: string;
  readonly clientKey: string;
  /** The listener the Console asked for at enrolment (used until a policy snapshot says otherwise). */
  readonly listener: ListenerConfig;
  readonly enrolledAt: string;
  /** When the certificates in use arrived (enrolment or the last renewal): renewal timing counts from here. */
  readonly certsReceivedAt: string;
}

/** What a renewal replaces. */
export type RenewedCertificates = Pick<Enrolment, 'serverCert' | 'serverKey' | 'clientCert' | 'clientKey' | 'certsReceivedAt'>;

const FILES = { ca: 'ca.pem', serverCert: 'server-cert.pem', serverKey: 'server-key.pem', clientCert: 'client-cert.pem', clientKey: 'client-key.pem' } as const;
const STATE_FILE = 'state.json';
const RENEWED_FILES = [FILES.serverCert, FILES.serverKey, FILES.clientCert, FILES.clientKey, STATE_FILE];
const RENEWAL_DIR = 'renewal.pending';
const RENEWAL_READY = 'READY';

/** Completes a renewal staged with its READY mark (rename is idempotent per file); drops one without. */
function finishStagedRenewal(dir: string): void {
  const staged = join(dir, RENEWAL_DIR);
  if (!existsSync(staged)) return;
  if (existsSync(join(staged, RENEWAL_READY))) {
    for (const f of RENEWED_FILES) if (existsSync(join(staged, f))) renameSync(join(staged, f), join(dir, f));
    syncDir(dir);
  }
  rmSync(staged, { recursive: true, force: true });
}

/** The saved enrolment in `dir`, or null when there is none. Throws a config error when it is damaged. */
export function loadEnrolment(dir: string): Enrolment | null {
  const statePath = join(dir, STATE_FILE);
  try {
    finishStagedRenewal(dir);
    if (!existsSync(statePath)) return null;
    const state = JSON.parse(readFileSync(statePath, 'utf8')) as Pick<Enrolment, 'consoleUrl' | 'hostName' | 'listener' | 'enrolledAt'> & { certsReceivedAt?: string };
    const pems = Object.fromEntries(Object.entries(FILES).map(([k, f]) => [k, readFileSync(join(dir, f), 'utf8')])) as Record<keyof typeof FILES, string>;
    return {
      consoleUrl: state.consoleUrl,
      hostName: state.hostName,
      listener: state.listener,
      enrolledAt: state.enrolledAt,
      certsReceivedAt: state.certsReceivedAt ?? state.enrolledAt,
      ...pems,
    };
  } catch (e) {
    throw defenderErrors.config(`the enrolment saved in ${dir} is damaged (${(e as NodeJS.ErrnoException).code ?? (e as Error).message}); enrol again with --join-token T --re-enroll`);
  }
}

const stateJson = (e: Enrolment): string =>
  `${JSON.stringify({ consoleUrl: e.consoleUrl, hostName: e.hostName, listener: e.listener, enrolledAt: e.enrolledAt, certsReceivedAt: e.certsReceivedAt }, null, 2)}\n`;

function saveEnrolment(dir: string, e: Enrolment): void {
  for (const [k, f] of Object.entries(FILES)) writeFileAtomic(join(dir, f), e[k as keyof typeof FILES]);
  writeFileAtomic(join(dir, STATE_FILE), stateJson(e));
}

/** Saves renewed certificates and keys over `current`'s, all or nothing (see the header); returns the new state. */
export function saveRenewedCertificates(dir: string, current: Enrolment, renewed: RenewedCertificates): Enrolment {
  const next: Enrolment = { ...current, ...renewed };
  const staged = join(dir, RENEWAL_DIR);
  rmSync(staged, { recursive: true, force: true });
  ensurePrivateDir(staged);
  for (const k of ['serverCert', 'serverKey', 'clientCert', 'clientKey'] as const) writeFileAtomic(join(staged, FILES[k]), next[k]);
  writeFileAtomic(join(staged, STATE_FILE), stateJson(next));
  writeFileAtomic(join(staged, RENEWAL_READY), '');
  finishStagedRenewal(dir);
  return next;
}

export async function newKeyAndCsr(commonName: string): Promise<{ keyPem: string; csrPem: string; spki: Buffer }> {
  const keys = (await webcrypto.subtle.generateKey(EC_KEY_ALGORITHM, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
  const csr = await x509.Pkcs10CertificateRequestGenerator.create({
    name: new x509.Name([{ CN: [{ utf8String: commonName }] }]),
    keys: keys as never,
    signingAlgorithm: SIGNING_ALGORITHM,
  });
  const pkcs8 = await webcrypto.subtle.exportKey('pkcs8', keys.privateKey);
  const spki = Buffer.from(await webcrypto.subtle.exportKey('spki', keys.publicKey));
  const keyPem = `${x509.PemConverter.encode(pkcs8, 'PRIVATE KEY').replace(/\r\n/g, '\n').trimEnd()}\n`;
  return { keyPem, csrPem: csr.toString('pem'), spki };
}

/** The certificate must carry `spki` and be signed by `ca`. */
export function checkIssued(label: string, certPem: string, spki: Buffer, ca: X509Certificate): void {
  const cert = new X509Certificate(certPem);
  if (!cert.publicKey.export({ type: 'spki', format: 'der' }).equals(spki)) throw new Error(`the ${label} from the Console is not for the key this Defender generated`);
  if (!cert.checkIssued(ca) || !cert.verify(ca.publicKey)) throw new Error(`the ${label} from the Console does not chain to the CA it sent`);
}

function listenerOf(listen: string): ListenerConfig {
  return { type: 'tcp', address: listen };
}

async function enrol(config: ConsoleModeConfig, log: Logger): Promise<Enrolment> {
  const hostName = hostNameSchema.safeParse(config.hostName ?? osHostname());
  if (!hostName.success) throw defenderErrors.config(`--host-name: ${hostName.error.issues[0]!.message}`);
  let consoleCa: string | undefined;
  if (config.consoleCa) {
    try {
      consoleCa = readFileSync(config.consoleCa, 'utf8');
    } catch (e) {
      throw defenderErrors.config(`cannot read --console-ca ${config.consoleCa}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
    }
  }
  const pins = config.consolePin?.split(';').map((p) => p.trim()) ?? [];
  if (!consoleCa && pins.length === 0) {
    throw defenderErrors.config(
      "to enrol, the Defender must be able to verify the Console: give --console-ca FILE (the Console's CA, from GET /api/v1/ca) or --console-pin sha256//… (the pin the Console shows); it never enrols without verifying",
    );
  }
  const server = await newKeyAndCsr(hostName.data);
  const client = await newKeyAndCsr(hostName.data);
  const addresses = [...new Set([...config.addresses, 'localhost', '127.0.0.1'])];
  const request: EnrollRequest = {
    joinToken: config.joinToken!,
    hostName: hostName.data,
    addresses,
    version: DEFENDER_VERSION,
    serverCsr: server.csrPem,
    clientCsr: client.csrPem,
    listener: listenerOf(config.listen),
  };
  const link = consoleLink(config.console, { ca: consoleCa, pins });
  let res;
  try {
    res = await link.send('POST', '/api/v1/defenders/enroll', request, 30_000);
  } catch (e) {
    throw defenderErrors.config(`cannot enrol with the Console at ${config.console}: ${(e as Error).message}`);
  }
  if (res.status !== 200 && res.status !== 201) {
    const message = (res.body as { error?: { message?: string } } | null)?.error?.message ?? res.text.slice(0, 300);
    throw defenderErrors.config(`the Console refused the enrolment (${res.status}): ${message}`);
  }
  const parsed = enrollResponse.safeParse(res.body);
  if (!parsed.success) throw defenderErrors.config(`the Console's enrolment answer does not match the contract: ${parsed.error.issues[0]!.path.join('.')}: ${parsed.error.issues[0]!.message}`);
  const answer = parsed.data;
  try {
    const ca = new X509Certificate(answer.ca);
    checkIssued('server certificate', answer.serverCert, server.spki, ca);
    checkIssued('client certificate', answer.clientCert, client.spki, ca);
  } catch (e) {
    throw defenderErrors.config(`refusing the enrolment: ${(e as Error).message}`);
  }
  const enrolment: Enrolment = {
    consoleUrl: config.console,
    hostName: answer.hostName,
    ca: answer.ca,
    serverCert: answer.serverCert,
    serverKey: server.keyPem,
    clientCert: answer.clientCert,
    clientKey: client.keyPem,
    listener: answer.listener,
    enrolledAt: new Date().toISOString(),
    certsReceivedAt: new Date().toISOString(),
  };
  saveEnrolment(config.state, enrolment);
  log.info('enrolled with the Console', { console: config.console, host: enrolment.hostName, state: config.state });
  return enrolment;
}

/** The enrolment to run with: the saved one, or a new one when asked (or when there is none yet). */
export async function ensureEnrolment(config: ConsoleModeConfig, log: Logger): Promise<Enrolment> {
  try {
    ensurePrivateDir(config.state);
  } catch (e) {
    throw defenderErrors.config(`cannot create the state directory ${config.state}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  const saved = loadEnrolment(config.state);
  if (saved && !config.reEnroll) {
    if (config.joinToken) log.info('already enrolled; ignoring --join-token (add --re-enroll to enrol again)', { host: saved.hostName, state: config.state });
    if (config.hostName && config.hostName.toLowerCase() !== saved.hostName.toLowerCase()) {
      throw defenderErrors.config(`this Defender is enrolled as '${saved.hostName}', not '${config.hostName}'; to change its name enrol again with --join-token T --re-enroll`);
    }
    return saved;
  }
  if (!config.joinToken) {
    throw defenderErrors.config(`this Defender is not enrolled yet (nothing in ${config.state}): give --join-token T (an admin creates one in the Console)`);
  }
  const enrolment = await enrol(config, log);
  if (saved) rmSync(join(config.state, CACHE_FILE), { force: true }); // the old enrolment's policy is not this one's
  return enrolment;
}
