/**
 * Enrolment: a Defender with a join token gets its two certificates and is registered.
 *
 * - The token is checked first (401 unknown, 410 expired or used), then both CSRs (400 naming the field), and
 *   only then consumed, so a typo in a CSR does not burn a single-use token. If issuing fails after that, the
 *   use is given back and anything already issued is revoked.
 * - Server certificate: serverAuth, SANs = the host name plus the extra addresses (DNS names and IPs), registered
 *   as kind 'defender-server', which never authenticates anyone to the Console. A name another enrolled Defender
 *   has (host name or SAN) → 409, loopback names aside (refuseOthersNames).
 * - Client certificate: clientAuth, `CN=<host>, O=Drawbridge Defender`, registered as kind 'defender': the only
 *   certificate the Console accepts as this Defender (server.ts `authenticate`).
 * - Both keys stay on the Defender: only CSRs come in. Re-enrolling a host name revokes its older certificates, and
 *   takes a join token made for that name (409 otherwise; a token for another name: 403): a token for any name
 *   enrols only names no Defender has, so its holder cannot take over an enrolled host and its secrets. Both checks
 *   run again in the transaction that registers the Defender: another enrolment of the name may have committed
 *   while this one issued its certificates.
 * - Both certificates live `--defender-cert-lifetime` seconds (a year by default); the Defender renews them itself
 *   (renew-defender.ts), and the SANs are recorded so a renewal reissues exactly these.
 */
import { isIP } from 'node:net';
import { readCsr } from '../../shared/identity/certificate-profiles.js';
import { hostName as hostNameSchema, type EnrollResponse } from '../../shared/wire/defender-console.js';
import type { ConsoleContext } from '../context.js';
import { nowIso } from '../db/database.js';
import { consoleErrors, FieldError } from '../errors.js';
import { DEFENDER_CLIENT_KIND, DEFENDER_SERVER_KIND, type DefenderStore, type ServerNames } from './defender-store.js';
import type { JoinTokenStore } from './join-tokens.js';

/** How long a Defender's certificates live (enrolment and renewal alike). */
export const defenderCertLifetimeMs = (ctx: ConsoleContext): number => ctx.config.defenderCertLifetime * 1000;

export interface EnrollInput {
  readonly joinToken: string;
  readonly hostName: string;
  readonly addresses: readonly string[];
  readonly version: string;
  readonly serverCsr: string;
  readonly clientCsr: string;
  readonly listener: EnrollResponse['listener'];
}

/** The server certificate's SANs: the host name first (it becomes the subject), then the extra addresses. */
export function serverNames(hostName: string, addresses: readonly string[]): { dnsNames: string[]; ips: string[] } {
  const dnsNames = [hostName];
  const ips: string[] = [];
  if (isIP(hostName)) ips.push(hostName);
  addresses.forEach((raw, i) => {
    const a = raw.replace(/^\[(.*)\]$/, '$1');
    if (isIP(a)) {
      if (!ips.includes(a)) ips.push(a);
    } else if (hostNameSchema.safeParse(a).success) {
      if (!dnsNames.some((d) => d.toLowerCase() === a.toLowerCase())) dnsNames.push(a);
    } else {
      throw new FieldError(`body.addresses.${i}`, 'must be a DNS name or an IP address');
    }
  });
  return { dnsNames, ips };
}

/** Names that mean "this machine" to whoever connects: every Defender's certificate may carry them. */
function isLoopback(name: string): boolean {
  const n = name.toLowerCase();
  return n === 'localhost' || n.endsWith('.localhost') || n === '::1' || (isIP(n) === 4 && n.startsWith('127.'));
}

/**
 * Refuses (409) server certificate names another enrolled Defender has (its host name or a SAN), loopback names
 * aside: the docker CLI trusts the Console CA for every name, so such a certificate would let its Defender pose as
 * the other one to anyone it can redirect (DNS, ARP) and collect their registry passwords and `-e` values.
 */
export function refuseOthersNames(defenders: DefenderStore, hostName: string, names: ServerNames): void {
  const others = defenders.namesOfOthers(hostName);
  for (const name of [...names.dnsNames, ...names.ips]) {
    const owner = others.get(name.toLowerCase());
    if (owner !== undefined && !isLoopback(name)) {
      throw consoleErrors.conflict(`the address '${name}' belongs to the enrolled Defender '${owner}'; a Defender's certificate may name only its own addresses (remove '${owner}' first if the address has moved: DELETE /api/v1/defenders/${owner})`);
    }
  }
}

/**
 * Enrolling a name again replaces that Defender (its certificates are revoked, its secrets go to the new one): only
 * with a token an admin made for that name (`tokenHost`). A token for any name enrols only names no Defender has
 * (409 otherwise).
 */
export function refuseTakeover(defenders: DefenderStore, hostName: string, tokenHost: string | null): void {
  const existing = defenders.get(hostName);
  if (existing && tokenHost === null) {
    throw consoleErrors.conflict(`a Defender named '${existing.hostName}' is already enrolled; to enrol it again, use a join token made for it (POST /api/v1/defenders/join-tokens {"hostName":"${existing.hostName}"}), or remove it first (DELETE /api/v1/defenders/${existing.hostName})`);
  }
}

export async function checkCsr(pem: string, field: string): Promise<void> {
  try {
    await readCsr(pem);
  } catch (e) {
    throw new FieldError(field, (e as Error).message);
  }
}

export async function enrollDefender(
  ctx: ConsoleContext,
  stores: { tokens: JoinTokenStore; defenders: DefenderStore },
  input: EnrollInput,
  address: string | null,
): Promise<EnrollResponse> {
  const token = stores.tokens.check(input.joinToken, input.hostName);
  refuseTakeover(stores.defenders, input.hostName, token.hostName);
  const names = serverNames(input.hostName, input.addresses);
  refuseOthersNames(stores.defenders, input.hostName, names);
  await checkCsr(input.serverCsr, 'body.serverCsr');
  await checkCsr(input.clientCsr, 'body.clientCsr');

  const giveBack = stores.tokens.consume(input.joinToken);
  const issued: string[] = [];
  try {
    const server = await ctx.ca.issueFromCsr(input.serverCsr, { kind: 'server', ...names }, defenderCertLifetimeMs(ctx), { kind: DEFENDER_SERVER_KIND });
    issued.push(server.serial);
    const client = await ctx.ca.issueFromCsr(input.clientCsr, { kind: 'defender-client', hostName: input.hostName }, defenderCertLifetimeMs(ctx), { kind: DEFENDER_CLIENT_KIND });
    issued.push(client.serial);
    const record = stores.defenders.enrol({
      hostName: input.hostName,
      address,
      version: input.version,
      requestedListener: input.listener,
      clientCertSerial: client.serial,
      serverCertSerial: server.serial,
      serverNames: names,
    }, () => {
      // Again: another enrolment may have run meanwhile (a token for this name enrolling it while we issued).
      refuseTakeover(stores.defenders, input.hostName, token.hostName);
      refuseOthersNames(stores.defenders, input.hostName, names);
    });
    ctx.log.info('defender enrolled', { host: input.hostName, address: address ?? '-', version: input.version });
    return { hostName: input.hostName, ca: ctx.ca.certPem, serverCert: server.certPem, clientCert: client.certPem, listener: record.listener };
  } catch (e) {
    giveBack();
    // Never handed out, so nobody can present them; revoked anyway so the register tells the truth.
    for (const serial of issued) ctx.db.prepare('UPDATE certificates SET revoked_at = ? WHERE serial = ? AND revoked_at IS NULL').run(nowIso(), serial);
    throw e;
  }
}
