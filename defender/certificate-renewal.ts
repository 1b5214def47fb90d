/**
 * A Console-managed Defender renews its own certificates before they expire, without a restart.
 *
 * - At start and then when renewal-schedule.ts says (a third of the lifetime left; checked at least hourly,
 *   jittered): new keys made here (the private keys never leave the machine), CSRs to
 *   `POST /api/v1/defenders/renew` over the Console link, authenticated by the current client certificate.
 * - The answer is checked like enrolment's (our public keys, chained to the CA trusted since enrolment, our host
 *   name), saved all or nothing in the state directory (enrolment.ts), and only then swapped in: every listener's
 *   TLS context, the Console link's client certificate, and the policy stream reconnected with it. Connections
 *   already open keep the certificate they were opened with.
 * - A failure is logged with what to do and retried with backoff; meanwhile the current certificates serve until
 *   they expire. An expired client certificate cannot be renewed: the log says to enrol again.
 */
import { X509Certificate } from 'node:crypto';
import { renewResponse, type RenewRequest } from '../shared/wire/defender-console.js';
import { Backoff } from './backoff.js';
import type { ConsoleLink } from './console-link.js';
import { checkIssued, newKeyAndCsr, saveRenewedCertificates, type Enrolment } from './enrolment.js';
import type { Logger } from './log.js';
import { decideRenewal, nextCheckDelay, retryDelay, type RenewalInput } from './renewal-schedule.js';

export interface CertificateRenewalOptions {
  readonly stateDir: string;
  readonly enrolment: Enrolment;
  readonly link: ConsoleLink;
  readonly log: Logger;
  /** Puts renewed material to use (listeners, Console link, policy stream). */
  swap(renewed: Enrolment): void;
  readonly random?: () => number;
  readonly backoff?: Backoff;
}

export interface CertificateRenewal {
  /** The enrolment with the certificates in use now. */
  readonly current: Enrolment;
  stop(): void;
}

const REENROL = 'this Defender must be enrolled again: restart it with --join-token T --re-enroll (an admin creates the token in the Console)';

const timesOf = (pem: string): { notBefore: number; notAfter: number } => {
  const cert = new X509Certificate(pem);
  return { notBefore: Date.parse(cert.validFrom), notAfter: Date.parse(cert.validTo) };
};

export function renewalInput(e: Enrolment): RenewalInput {
  return { server: timesOf(e.serverCert), client: timesOf(e.clientCert), receivedAt: Date.parse(e.certsReceivedAt) || null };
}

const serialOf = (pem: string): string => new X509Certificate(pem).serialNumber.toLowerCase();

/** One renewal: new keys, the Console's answer checked, saved. Throws with a message for the operator. */
async function renew(opts: CertificateRenewalOptions, current: Enrolment): Promise<Enrolment> {
  const server = await newKeyAndCsr(current.hostName);
  const client = await newKeyAndCsr(current.hostName);
  const request: RenewRequest = { serverCsr: server.csrPem, clientCsr: client.csrPem };
  let res;
  try {
    res = await opts.link.send('POST', '/api/v1/defenders/renew', request, 30_000);
  } catch (e) {
    throw new Error(`cannot reach the Console at ${opts.link.url} (${(e as Error).message}); check that it is up and reachable`);
  }
  if (res.status !== 200) {
    const message = (res.body as { error?: { message?: string } } | null)?.error?.message ?? res.text.slice(0, 300);
    const hint = res.status === 401 || res.status === 403 ? `; if this Defender was removed or its certificate revoked in the Console, ${REENROL}` : '';
    throw new Error(`the Console refused the renewal (${res.status}): ${message}${hint}`);
  }
  const parsed = renewResponse.safeParse(res.body);
  if (!parsed.success) throw new Error(`the Console's renewal answer does not match the contract: ${parsed.error.issues[0]!.path.join('.')}: ${parsed.error.issues[0]!.message}`);
  const answer = parsed.data;
  if (answer.hostName.toLowerCase() !== current.hostName.toLowerCase()) throw new Error(`the Console renewed the certificates of '${answer.hostName}', not of '${current.hostName}'; refusing them`);
  const ca = new X509Certificate(current.ca); // the CA trusted since enrolment, not whatever came with the answer
  checkIssued('renewed server certificate', answer.serverCert, server.spki, ca);
  checkIssued('renewed client certificate', answer.clientCert, client.spki, ca);
  try {
    return saveRenewedCertificates(opts.stateDir, current, {
      serverCert: answer.serverCert,
      serverKey: server.keyPem,
      clientCert: answer.clientCert,
      clientKey: client.keyPem,
      certsReceivedAt: new Date().toISOString(),
    });
  } catch (e) {
    throw new Error(`cannot save the renewed certificates in ${opts.stateDir} (${(e as NodeJS.ErrnoException).code ?? (e as Error).message}); check the disk and the directory's owner`);
  }
}

export function startCertificateRenewal(opts: CertificateRenewalOptions): CertificateRenewal {
  const { log } = opts;
  const random = opts.random ?? Math.random;
  const backoff = opts.backoff ?? new Backoff({ initialMs: 5_000, maxMs: 15 * 60_000 });
  let current = opts.enrolment;
  let timer: NodeJS.Timeout | null = null;
  let stopped = false;

  const schedule = (delay: number): void => {
    if (stopped) return;
    timer = setTimeout(() => void check(), delay);
    timer.unref();
  };

  async function check(): Promise<void> {
    timer = null;
    const input = renewalInput(current);
    const decision = decideRenewal(input, Date.now());
    if (decision.action === 're-enrol') {
      log.error(`the certificates of this Defender expired at ${new Date(input.client.notAfter).toISOString()} and can no longer be renewed; ${REENROL}`, { host: current.hostName });
      schedule(nextCheckDelay(decision, Date.now(), random()));
      return;
    }
    if (decision.action === 'wait') {
      schedule(nextCheckDelay(decision, Date.now(), random()));
      return;
    }
    try {
      const renewed = await renew(opts, current);
      if (stopped) return;
      const old = current;
      current = renewed;
      opts.swap(renewed);
      backoff.reset();
      log.info('certificates renewed', {
        host: renewed.hostName,
        server: serialOf(renewed.serverCert),
        client: serialOf(renewed.clientCert),
        previousClient: serialOf(old.clientCert),
        notAfter: new Date(renewalInput(renewed).client.notAfter).toISOString(),
      });
      schedule(nextCheckDelay(decideRenewal(renewalInput(renewed), Date.now()), Date.now(), random()));
    } catch (e) {
      if (stopped) return;
      const delay = retryDelay(backoff.next(), input.client.notAfter, Date.now());
      log.error('cannot renew the certificates; still serving with the current ones until they expire, and retrying', {
        error: (e as Error).message,
        expires: new Date(Math.min(input.client.notAfter, input.server.notAfter)).toISOString(),
        retryInSeconds: Math.round(delay / 1000),
      });
      schedule(delay);
    }
  }

  schedule(0);
  return {
    get current() {
      return current;
    },
    stop() {
      stopped = true;
      if (timer) clearTimeout(timer);
      timer = null;
    },
  };
}
