/**
 * Renewal: an enrolled Defender trades CSRs for new keys for a new server and client certificate, authenticated by
 * its current client certificate (mTLS), before the current ones expire.
 *
 * - The same profiles and checks as enrolment: ECDSA P-256 CSRs with a valid self-signature (400 naming the
 *   field), serverAuth with the SANs on record, clientAuth with `CN=<host>, O=Drawbridge Defender`. Nothing in
 *   the CSRs but the public key is used.
 * - Only a Defender that is still registered renews: a deleted Defender's certificates are revoked, so it is not
 *   even authenticated (401); a registered host presenting a client certificate that is neither its current nor
 *   the one its last renewal replaced gets 403. A Defender enrolled before SANs were recorded gets 409 and must
 *   enrol again, rather than a server certificate with names we would have to guess.
 * - The new certificates are registered before they are handed out. The replaced client certificate is revoked
 *   once the Defender authenticates with the new one (defender-store.ts `confirmCertificate`); a lost answer is
 *   therefore harmless: the Defender asks again with its old certificate and the unused pair is revoked.
 */
import type { RenewRequest, RenewResponse } from '../../shared/wire/defender-console.js';
import type { ConsoleContext } from '../context.js';
import { nowIso } from '../db/database.js';
import { consoleErrors } from '../errors.js';
import { DEFENDER_CLIENT_KIND, DEFENDER_SERVER_KIND, sameSerial, type DefenderStore } from './defender-store.js';
import { checkCsr, defenderCertLifetimeMs } from './enroll-defender.js';

export async function renewDefender(ctx: ConsoleContext, defenders: DefenderStore, principal: { hostName: string; serial: string }, input: RenewRequest): Promise<RenewResponse> {
  const record = defenders.get(principal.hostName);
  if (!record) throw consoleErrors.forbidden(`the Defender '${principal.hostName}' is not registered any more; enrol it again with a join token (--join-token T --re-enroll)`);
  const presented = (serial: string | null): boolean => serial !== null && sameSerial(serial, principal.serial);
  if (!presented(record.clientCertSerial) && !presented(record.previousCertSerial)) {
    throw consoleErrors.forbidden(`this client certificate is not the current one of '${record.hostName}'; enrol it again with a join token (--join-token T --re-enroll)`);
  }
  if (!record.serverNames) {
    throw consoleErrors.conflict(`'${record.hostName}' was enrolled before its server certificate's names were recorded; enrol it again with a join token (--join-token T --re-enroll)`);
  }
  await checkCsr(input.serverCsr, 'body.serverCsr');
  await checkCsr(input.clientCsr, 'body.clientCsr');

  const lifetime = defenderCertLifetimeMs(ctx);
  const issued: string[] = [];
  try {
    const server = await ctx.ca.issueFromCsr(input.serverCsr, { kind: 'server', dnsNames: [...record.serverNames.dnsNames], ips: [...record.serverNames.ips] }, lifetime, { kind: DEFENDER_SERVER_KIND });
    issued.push(server.serial);
    const client = await ctx.ca.issueFromCsr(input.clientCsr, { kind: 'defender-client', hostName: record.hostName }, lifetime, { kind: DEFENDER_CLIENT_KIND });
    issued.push(client.serial);
    if (!defenders.renew(record.hostName, principal.serial, { clientCertSerial: client.serial, serverCertSerial: server.serial })) {
      throw consoleErrors.forbidden(`the Defender '${record.hostName}' was removed while renewing; enrol it again with a join token`);
    }
    ctx.log.info('defender certificates renewed', { host: record.hostName, by: principal.serial, client: client.serial, server: server.serial, notAfter: client.notAfter });
    return { hostName: record.hostName, ca: ctx.ca.certPem, serverCert: server.certPem, clientCert: client.certPem };
  } catch (e) {
    // Never handed out: revoked so the register tells the truth.
    for (const serial of issued) ctx.db.prepare('UPDATE certificates SET revoked_at = ? WHERE serial = ? AND revoked_at IS NULL').run(nowIso(), serial);
    throw e;
  }
}
