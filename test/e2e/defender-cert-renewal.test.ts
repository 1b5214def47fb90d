// A real Console whose Defender certificates live 24 s, and a real Console-managed Defender in front of the private
// dockerd, driven with the real docker CLI: the Defender renews its certificates again and again without a restart;
// docker keeps working through it, a keep-alive connection opened before a renewal keeps working, new connections
// get the new server certificate, the policy stream keeps delivering rule changes, the Console shows the new
// certificates and revokes each replaced client certificate; a deleted Defender cannot renew, and one whose
// certificates expired says to enrol again.
import { X509Certificate } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { request as httpsRequest } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TLSSocket } from 'node:tls';
import { afterAll, beforeAll, describe, expect, inject, test } from 'vitest';
import { makeCsr } from '../support/csr.js';
import { docker } from '../support/docker-cli.js';
import { startConsoleProcess, type ConsoleProcess } from '../support/console-process.js';
import { startDefenderProcess, type DefenderProcess } from '../support/defender-process.js';
import type {} from '../support/global-setup.js';
import { writePemFiles } from '../support/pki.js';
import { pollUntil } from '../support/poll.js';
import { RawTlsClient, rawRequest } from '../support/tls-client.js';

const LIFETIME_S = 24; // renewal is due after 16 s
const HOST = 'dev-renew';
const ACTIONS = ['docker_ping', 'docker_version', 'container_list'];

let work: string;
let consoleProc: ConsoleProcess;
let defender: DefenderProcess;
let userDir: string;
const cleanup: (() => Promise<unknown>)[] = [];

async function api(method: string, path: string, json?: unknown): Promise<{ status: number; body: any; text: string }> {
  return consoleProc.call(method, path, { token: await consoleProc.adminToken(), ...(json === undefined ? {} : { json }) });
}

/** Serials compared the way Node prints them (upper case, maybe without a leading zero nibble) and the Console (lower). */
const norm = (serial: string): string => serial.toLowerCase().replace(/^0+/, '');
const serialOfPem = (pem: string): string => norm(new X509Certificate(pem).serialNumber);
const stateFile = (f: string): Promise<string> => readFile(join(defender.stateDir, f), 'utf8');

/**
 * The server certificate a new connection to the Defender gets. A whole request on it, so the handshake completes
 * on the Defender's side too (a client that drops the socket mid-handshake leaves the Defender waiting for its
 * handshake timeout).
 */
async function serverSerial(): Promise<string> {
  const [ca, cert, key] = await Promise.all(['ca.pem', 'cert.pem', 'key.pem'].map((f) => readFile(join(userDir, f))));
  return new Promise((resolve, reject) => {
    const req = httpsRequest({ host: '127.0.0.1', port: defender.port, path: '/_ping', ca, cert, key, agent: false }, (res) => {
      const serial = norm((res.socket as TLSSocket).getPeerCertificate().serialNumber);
      res.resume().on('end', () => resolve(serial));
    });
    req.on('error', reject).end();
  });
}

async function dockerPs(): Promise<{ ok: boolean; message: string }> {
  const env: NodeJS.ProcessEnv = { ...process.env, DOCKER_HOST: defender.host, DOCKER_TLS_VERIFY: '1', DOCKER_CERT_PATH: userDir, DOCKER_CONFIG: join(work, 'docker-config') };
  delete env.DOCKER_CONTEXT;
  const r = await docker(['ps', '--format', '{{.ID}}'], { env, timeoutMs: 20_000 });
  return { ok: r.code === 0, message: r.stderr.trim() };
}

const renewals = (log: string): number => log.match(/INFO drawbridge-defender: certificates renewed/g)?.length ?? 0;

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'dbrenew-'));
  consoleProc = await startConsoleProcess({ args: ['--defender-cert-lifetime', String(LIFETIME_S)] });
  expect((await api('POST', '/api/v1/rules', { name: 'devs', effect: 'allow', groups: ['devs'], hosts: ['dev-*'], actions: ACTIONS })).status).toBe(201);
  expect((await api('POST', '/api/v1/users', { name: 'bruce', password: 'bruce-password-1234', role: 'user', groups: ['devs'] })).status).toBe(201);
  const { csr, key } = await makeCsr();
  const issued = await consoleProc.call('POST', '/api/v1/certs', { token: await consoleProc.login('bruce', 'bruce-password-1234'), json: { csr } });
  expect(issued.status, issued.text).toBe(201);
  userDir = join(work, 'bruce');
  await writePemFiles(userDir, { 'ca.pem': consoleProc.caPem, 'cert.pem': issued.body.cert, 'key.pem': key });
  const token = (await api('POST', '/api/v1/defenders/join-tokens', {})).body.token as string;
  defender = await startDefenderProcess({ dockerHost: inject('dockerHost'), hostName: HOST, console: { url: consoleProc.url, joinToken: token, ca: consoleProc.caPem } });
});

afterAll(async () => {
  for (const c of cleanup.reverse()) await c().catch(() => undefined);
  await defender?.stop();
  await consoleProc?.stop({ remove: true });
  if (work) await rm(work, { recursive: true, force: true });
});

describe('a Defender with short-lived certificates', () => {
  test('renews them again and again without a restart: docker keeps working, an open keep-alive connection too, new connections get the new certificate', async () => {
    await pollUntil('docker ps through the Defender', async () => (await dockerPs()).ok, 20_000, 100);
    const kept = await RawTlsClient.connect(defender.port, userDir);
    cleanup.push(async () => kept.destroy());
    await kept.write(rawRequest('GET', '/_ping'));
    expect((await kept.readResponse()).status).toBe(200);
    const keptSerial = norm(kept.socket.getPeerCertificate().serialNumber);

    const seen = [keptSerial];
    for (let i = 1; i <= 3; i++) {
      const next = await pollUntil(`renewal ${i}: a new server certificate on new connections`, async () => {
        const s = await serverSerial();
        return s !== seen.at(-1) && s;
      }, 2 * LIFETIME_S * 1000, 200);
      seen.push(next);
      expect(await dockerPs()).toMatchObject({ ok: true });
      await kept.write(rawRequest('GET', '/_ping'));
      expect((await kept.readResponse()).status).toBe(200);
      expect(norm(kept.socket.getPeerCertificate().serialNumber)).toBe(keptSerial); // still the connection opened first
    }
    expect(new Set(seen).size).toBe(4);
    expect(renewals(defender.log())).toBeGreaterThanOrEqual(3);
    expect(defender.log()).not.toMatch(/cannot renew the certificates/);
  });

  test('the Console shows the certificates the Defender uses and revoked every client certificate it replaced; the state is saved privately', async () => {
    const shown = await pollUntil('the Console to show what the Defender serves and presents', async () => {
      const row = (await api('GET', `/api/v1/defenders/${HOST}`)).body;
      const [server, client] = [await serverSerial(), serialOfPem(await stateFile('client-cert.pem'))];
      return norm(row.serverCertSerial) === server && norm(row.clientCertSerial) === client && row;
    }, 30_000, 100);
    expect(Date.parse(shown.certNotAfter)).toBeGreaterThan(Date.now());
    expect(serialOfPem(await stateFile('server-cert.pem'))).toBe(norm(shown.serverCertSerial));
    await pollUntil('every client certificate but the one in use revoked', async () => {
      const current = serialOfPem(await stateFile('client-cert.pem'));
      const certs = ((await api('GET', '/api/v1/certs?limit=500')).body.items as { serial: string; kind: string; subject: string; status: string }[]).filter((c) => c.kind === 'defender' && c.subject === HOST);
      const valid = certs.filter((c) => c.status === 'valid').map((c) => norm(c.serial));
      return certs.length >= 4 && valid.length === 1 && valid[0] === current;
    }, 30_000, 200);
    expect((await stat(defender.stateDir)).mode & 0o777).toBe(0o700);
    for (const f of ['server-key.pem', 'client-key.pem', 'server-cert.pem', 'client-cert.pem', 'state.json']) expect((await stat(join(defender.stateDir, f))).mode & 0o777).toBe(0o600);
    expect(existsSync(join(defender.stateDir, 'renewal.pending'))).toBe(false);
  });

  test('the policy stream keeps delivering rule changes after renewals', async () => {
    const before = renewals(defender.log());
    await pollUntil('one more renewal', () => renewals(defender.log()) > before, 2 * LIFETIME_S * 1000, 200);
    const denyList = await api('PUT', '/api/v1/rules/devs', { name: 'devs', effect: 'allow', groups: ['devs'], hosts: ['dev-*'], actions: ACTIONS.filter((a) => a !== 'container_list') });
    expect(denyList.status, denyList.text).toBe(200);
    await pollUntil('the Defender to deny docker ps', async () => (await dockerPs()).message.includes("The command 'container_list' denied for user 'bruce'"), 15_000, 100);
    expect((await api('PUT', '/api/v1/rules/devs', { name: 'devs', effect: 'allow', groups: ['devs'], hosts: ['dev-*'], actions: ACTIONS })).status).toBe(200);
    await pollUntil('the Defender to allow docker ps again', async () => (await dockerPs()).ok, 15_000, 100);
    const version = (await api('GET', '/api/v1/rules')).body.version as number;
    await pollUntil('the Console to see it connected at the current version', async () => {
      const row = (await api('GET', `/api/v1/defenders/${HOST}`)).body;
      return row.connected && row.policyVersion >= version;
    }, 15_000, 100);
  });

  test('a deleted Defender cannot renew and says to enrol again; started with expired certificates, it says the same', async () => {
    expect((await api('DELETE', `/api/v1/defenders/${HOST}`)).status).toBe(204);
    await pollUntil('the refused renewal in the log', () => /ERROR drawbridge-defender: cannot renew the certificates.*the Console refused the renewal \(40[13]\).*--join-token T --re-enroll/.test(defender.log()), 2 * LIFETIME_S * 1000, 200);
    expect(consoleProc.log()).toMatch(/defender certificates renewed host=dev-renew/);

    const notAfter = Date.parse(new X509Certificate(await stateFile('client-cert.pem')).validTo);
    await pollUntil('the client certificate to expire', () => Date.now() > notAfter + 1000, 2 * LIFETIME_S * 1000, 200);
    defender = await defender.restart();
    await pollUntil('the expiry in the log', () => /ERROR drawbridge-defender: the certificates of this Defender expired at \S+ and can no longer be renewed; .*--join-token T --re-enroll/.test(defender.log()), 15_000, 100);
  });
});
