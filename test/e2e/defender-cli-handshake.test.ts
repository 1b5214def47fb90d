// The real docker CLI against the real Defender with client certificates the TLS layer must refuse: signed by
// another CA (one with a different name, and an impostor with the very same name), expired, not yet valid, or
// none at all. The CLI must fail, no request may be decided (no audit line), the Defender must log why; the same
// user with a valid certificate gets in.
import { cp, mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { startCliDefender, type CliDefender } from '../support/cli-defender.js';
import { docker } from '../support/docker-cli.js';
import type {} from '../support/global-setup.js'; // the ProvidedContext keys
import { createCa, writePemFiles } from '../support/pki.js';

const DAY_MS = 24 * 60 * 60_000;
const alice = { user: 'alice', groups: ['ops'] };

let cli: CliDefender;
const dirs: Record<string, string> = {};

beforeAll(async () => {
  cli = await startCliDefender(inject('dockerHost'));
  const { dp } = cli;
  const users = join(dp.dir, 'users');
  // Go's TLS client offers its certificate only if its issuer is among the CAs the server names; the impostor
  // CA shares the real one's name, so its certificate is really sent and must fail the signature check.
  for (const [key, caName] of [['impostor', 'Drawbridge Test CA'], ['foreign', 'Some Other CA']] as const) {
    const ca = await createCa(caName);
    const pem = await ca.issueClientCert(alice);
    dirs[key] = join(users, key);
    await writePemFiles(dirs[key], { 'ca.pem': dp.ca.cert, 'cert.pem': pem.cert, 'key.pem': pem.key });
  }
  dirs.expired = await dp.certDir(alice, { name: 'expired', notAfter: new Date(Date.now() - DAY_MS) });
  dirs.future = await dp.certDir(alice, { name: 'future', notBefore: new Date(Date.now() + DAY_MS), notAfter: new Date(Date.now() + 30 * DAY_MS) });
  dirs.caOnly = join(users, 'ca-only');
  await mkdir(dirs.caOnly, { mode: 0o700 });
  await cp(join(cli.certs.alice, 'ca.pem'), join(dirs.caOnly, 'ca.pem'));
});

afterAll(async () => {
  await cli?.stop();
});

/** The environment for a cert directory, with TLS variables adjusted. */
function envFor(dir: string, tls: 'verify' | 'tls-only'): NodeJS.ProcessEnv {
  const env = cli.dp.dockerEnv(dir);
  if (tls === 'tls-only') {
    delete env.DOCKER_TLS_VERIFY;
    env.DOCKER_TLS = '1';
  }
  return env;
}

describe('refused TLS handshakes', () => {
  // [case, cert dir key, TLS variables, the Defender's logged reason, what the CLI prints after "error during connect: …"]
  const cases = [
    ['a certificate from an impostor CA with the real CA\'s name', 'impostor', 'verify', 'UNABLE_TO_VERIFY_LEAF_SIGNATURE', null],
    ['a certificate from an unrelated CA (the CLI does not even offer it)', 'foreign', 'verify', 'ERR_SSL_PEER_DID_NOT_RETURN_A_CERTIFICATE', 'remote error: tls: certificate required'],
    ['an expired certificate', 'expired', 'verify', 'CERT_HAS_EXPIRED', null],
    ['a certificate that is not valid yet', 'future', 'verify', 'CERT_NOT_YET_VALID', null],
    ['no certificate: DOCKER_TLS_VERIFY=1 with a directory holding only ca.pem', 'caOnly', 'verify', 'ERR_SSL_PEER_DID_NOT_RETURN_A_CERTIFICATE', 'remote error: tls: certificate required'],
    ['no certificate: DOCKER_TLS=1 with only ca.pem', 'caOnly', 'tls-only', 'ERR_SSL_PEER_DID_NOT_RETURN_A_CERTIFICATE', 'remote error: tls: certificate required'],
  ] as const;

  it.each(cases)('%s: the CLI fails, nothing is audited, the Defender logs why', async (_, key, tls, reason, cliError) => {
    const logBefore = cli.dp.log().length;
    const { result: r, lines: audit } = await cli.auditDuring(() => docker(['ps'], { env: envFor(dirs[key]!, tls) }));
    expect(r.code).toBe(1);
    expect(r.stdout).toBe('');
    expect(r.stderr).toMatch(/^error during connect: Get "https:\/\/127\.0\.0\.1:\d+\/v[\d.]+\/containers\/json": /);
    // With TLS 1.3 the client's certificate is checked after the client considers the handshake done; Node then
    // drops the connection without an alert, so the CLI sees the connection end (EOF, reset, or "server closed
    // idle connection") rather than a reason. A missing certificate does get the "certificate required" alert.
    if (cliError) expect(r.stderr).toContain(cliError);
    expect(audit).toEqual([]);
    const logged = cli.dp.log().slice(logBefore);
    // (no client= field when the certificate failed verification: Node has already dropped the socket's address)
    expect(logged).toMatch(new RegExp(`INFO drawbridge-defender: TLS handshake refused (client=127\\.0\\.0\\.1 )?error=${reason}\\n`));
    expect(logged).not.toMatch(/error=ECONNRESET/);
  });

  it('the same user with a valid certificate gets in', async () => {
    const { result: r, lines: audit } = await cli.auditDuring(() => docker(['ps', '--format', '{{.Names}}'], { env: envFor(cli.certs.alice, 'verify') }));
    expect(r).toMatchObject({ code: 0, stderr: '' });
    expect(audit.map((l) => [l.user, l.action, l.decision, l.rule])).toEqual([
      ['alice', 'docker_ping', 'allow', 'ops-on-dev'],
      ['alice', 'container_list', 'allow', 'ops-on-dev'],
    ]);
  });
});
