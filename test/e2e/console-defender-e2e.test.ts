// A real Console and two real Console-managed Defenders (`dev-a`, `prod-a`) in front of the private dockerd, driven
// with the real docker CLI: enrolment (CA and pin), live rule changes enforced by both, the Console going away
// (last policy kept, encrypted cache across a Defender restart, audit spooled) and coming back (audit delivered
// exactly once), the listener switched live between TCP and a UNIX socket, and revocation within seconds, also on
// an already open keep-alive connection.
import { spawn } from 'node:child_process';
import { createHash, randomBytes, X509Certificate } from 'node:crypto';
import { chmod, mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import { request as httpsRequest } from 'node:https';
import { createServer, connect as netConnect, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect as tlsConnect } from 'node:tls';
import { readFile } from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, inject, test } from 'vitest';
import { makeCsr } from '../support/csr.js';
import { daemonRequest, removeLabelled } from '../support/daemon-request.js';
import { docker, startDocker, type RunningDocker } from '../support/docker-cli.js';
import { freePort, startConsoleProcess, type ConsoleProcess } from '../support/console-process.js';
import { DRAWBRIDGE_BIN, startDefenderProcess, type DefenderProcess } from '../support/defender-process.js';
import type {} from '../support/global-setup.js';
import { writePemFiles } from '../support/pki.js';
import { pollUntil } from '../support/poll.js';
import { RawTlsClient, rawRequest } from '../support/tls-client.js';

const LABEL = 'drawbridge.test=console-defender-e2e';
const NO_POLICY = '[Drawbridge] this Defender has no policy yet (cannot reach the Console)';
const REVOKED = '[Drawbridge] your certificate has been revoked; get a new one from the Console';
const ACTIONS = ['docker_ping', 'docker_version', 'container_list', 'container_logs', 'container_inspect'];

let work: string;
let consoleProc: ConsoleProcess;
let devA: DefenderProcess;
let devAPort = 0; // where dev-a listens once the Console moved it (the listener test)
let prodA: DefenderProcess;
let bruce: { dir: string; serial: string }; // keeps working throughout
let bruceOld: { dir: string; serial: string }; // revoked at the end
const cleanup: (() => Promise<unknown>)[] = [];

const admin = (): Promise<string> => consoleProc.adminToken();

async function api<T = any>(method: string, path: string, json?: unknown): Promise<{ status: number; body: T; text: string }> {
  return consoleProc.call<T>(method, path, { token: await admin(), ...(json === undefined ? {} : { json }) });
}

async function joinToken(): Promise<string> {
  return (await newJoinToken()).token;
}

async function newJoinToken(): Promise<{ id: string; token: string }> {
  const r = await api('POST', '/api/v1/defenders/join-tokens', {});
  expect(r.status, r.text).toBe(201);
  return r.body;
}

/** The Console's TLS public key pin, as an admin would read it off the Console (curl's --pinnedpubkey format). */
function consolePin(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = tlsConnect({ host: '127.0.0.1', port, rejectUnauthorized: false }, () => {
      const spki = new X509Certificate(socket.getPeerCertificate(false).raw).publicKey.export({ type: 'spki', format: 'der' });
      socket.destroy();
      resolve(`sha256//${createHash('sha256').update(spki).digest('base64')}`);
    });
    socket.once('error', reject);
  });
}

/** A user in the Console and a certificate the Console issued for them, in the docker CLI's layout. */
async function userCert(name: string, groups: string[]): Promise<{ dir: string; serial: string }> {
  const password = `${name}-password-1234`;
  const created = await api('POST', '/api/v1/users', { name, password, role: 'user', groups });
  expect([201, 409]).toContain(created.status);
  const token = await consoleProc.login(name, password);
  const { csr, key } = await makeCsr();
  const issued = await consoleProc.call('POST', '/api/v1/certs', { token, json: { csr } });
  expect(issued.status, issued.text).toBe(201);
  const dir = join(work, 'users', `${name}-${randomBytes(3).toString('hex')}`);
  await writePemFiles(dir, { 'ca.pem': consoleProc.caPem, 'cert.pem': issued.body.cert, 'key.pem': key });
  return { dir, serial: issued.body.serial };
}

function envFor(dockerHost: string, certDir: string): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, DOCKER_HOST: dockerHost, DOCKER_TLS_VERIFY: '1', DOCKER_CERT_PATH: certDir, DOCKER_CONFIG: join(work, 'docker-config') };
  delete env.DOCKER_CONTEXT;
  return env;
}

async function dockerPs(dockerHost: string, certDir: string): Promise<{ ok: boolean; message: string }> {
  const r = await docker(['ps', '--format', '{{.ID}}'], { env: envFor(dockerHost, certDir), timeoutMs: 20_000 });
  return { ok: r.code === 0, message: r.stderr.trim() };
}

/** Polls `docker ps` until it succeeds (or fails with `message`); returns how long that took. */
async function untilPs(what: string, dockerHost: string, certDir: string, expected: { ok: true } | { ok: false; message: string }, timeoutMs = 15_000): Promise<number> {
  const started = Date.now();
  await pollUntil(what, async () => {
    const r = await dockerPs(dockerHost, certDir);
    return expected.ok ? r.ok : !r.ok && r.message.includes(expected.message);
  }, timeoutMs, 50);
  return Date.now() - started;
}

async function putRule(rule: Record<string, unknown>): Promise<void> {
  const r = await api('PUT', '/api/v1/rules/devs', { name: 'devs', effect: 'allow', groups: ['devs'], ...rule });
  expect(r.status, r.text).toBe(200);
}

/** Every audit row the Console stored for `host`, oldest first. */
async function consoleAudit(host: string): Promise<{ seq: number; time: string; action: string; path: string; decision: string; user: string | null }[]> {
  const rows: { seq: number; time: string; action: string; path: string; decision: string; user: string | null }[] = [];
  let cursor: string | null = null;
  do {
    const r: { status: number; body: { items: typeof rows; nextCursor: string | null } } = await api('GET', `/api/v1/audit?host=${host}&limit=500${cursor ? `&cursor=${cursor}` : ''}`);
    expect(r.status).toBe(200);
    rows.push(...r.body.items);
    cursor = r.body.nextCursor;
  } while (cursor);
  return rows.reverse();
}

/** An event as both sides keep it (the Console's path is cut to the wire contract's 8 KiB; the local file has it whole). */
const eventKey = (e: Record<string, unknown>): string => `${e.time as string} ${e.action as string} ${(e.path as string).slice(0, 8192)} ${e.decision as string}`;

/** Resolves once the Console has exactly the Defender's own (local copy of its) audit, each event once. */
async function auditDelivered(d: DefenderProcess, host: string): Promise<number> {
  return pollUntil(`the audit of ${host} at the Console`, async () => {
    const local = await d.audit();
    const stored = await consoleAudit(host);
    if (stored.length !== local.length) return false;
    expect(stored.map((e) => e.seq)).toEqual(local.map((_, i) => i + 1)); // 1..N: nothing lost, nothing twice
    expect(stored.map((e) => eventKey(e)).sort()).toEqual(local.map(eventKey).sort());
    return local.length;
  }, 60_000, 250);
}

/** One mTLS request to a Defender over TCP or its UNIX socket, as `certDir`'s user. */
async function mtlsGet(target: { port: number } | { path: string }, certDir: string, path: string): Promise<{ status: number; body: string }> {
  const [ca, cert, key] = await Promise.all(['ca.pem', 'cert.pem', 'key.pem'].map((f) => readFile(join(certDir, f))));
  return new Promise((resolve, reject) => {
    const where = 'path' in target ? { socketPath: target.path, host: 'localhost' } : { host: '127.0.0.1', port: target.port };
    const req = httpsRequest({ ...where, path, ca, cert, key, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8').on('data', (c: string) => (body += c)).on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject).end();
  });
}

/** A TCP port relayed byte for byte to a UNIX socket (what users run for the socket listener, like socat). */
function relayTo(socketPath: string, port: number): Promise<Server> {
  const server = createServer((client) => {
    const upstream = netConnect(socketPath);
    client.pipe(upstream).pipe(client);
    client.on('error', () => upstream.destroy());
    upstream.on('error', () => client.destroy());
  });
  return new Promise((resolve) => server.listen(port, '127.0.0.1', () => resolve(server)));
}

function runDefenderCli(args: string[]): Promise<{ code: number | null; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [DRAWBRIDGE_BIN, 'defender', ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.setEncoding('utf8').on('data', (s: string) => (stderr += s));
    const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
    child.once('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, stderr });
    });
  });
}

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'dbcd-'));
  consoleProc = await startConsoleProcess();
  const created = await api('POST', '/api/v1/rules', { name: 'devs', effect: 'allow', groups: ['devs'], hosts: ['dev-*'], actions: ACTIONS });
  expect(created.status, created.text).toBe(201);
  bruce = await userCert('bruce', ['devs']);
  bruceOld = await userCert('bruce', ['devs']);
  const dockerHost = inject('dockerHost');
  [devA, prodA] = await Promise.all([
    startDefenderProcess({ dockerHost, hostName: 'dev-a', console: { url: consoleProc.url, joinToken: await joinToken(), ca: consoleProc.caPem } }),
    startDefenderProcess({ dockerHost, hostName: 'prod-a', console: { url: consoleProc.url, joinToken: await joinToken(), pin: await consolePin(consoleProc.port) } }),
  ]);
});

afterAll(async () => {
  for (const c of cleanup.reverse()) await c().catch(() => undefined);
  await devA?.stop();
  await prodA?.stop();
  await consoleProc?.stop({ remove: true });
  await removeLabelled(inject('dockerHost'), LABEL);
  if (work) await rm(work, { recursive: true, force: true });
});

describe('enrolment', () => {
  test('both Defenders enrolled (one verified the Console by its CA, one by its key pin) and report the policy they enforce', async () => {
    const version = (await api('GET', '/api/v1/rules')).body.version as number;
    for (const host of ['dev-a', 'prod-a']) {
      const row = await pollUntil(`${host} to report version ${version}`, async () => {
        const r = await api('GET', `/api/v1/defenders/${host}`);
        return r.body.connected && r.body.policyVersion === version ? r.body : false;
      });
      expect(row).toMatchObject({ hostName: host, version: '0.1.0', activeListener: { type: 'tcp' } });
    }
    expect(devA.log()).toMatch(/INFO drawbridge-defender: enrolled with the Console/);
    for (const d of [devA, prodA]) {
      expect((await stat(d.stateDir)).mode & 0o777).toBe(0o700);
      for (const f of ['server-key.pem', 'client-key.pem', 'policy.cache', 'cache.key']) expect((await stat(join(d.stateDir, f))).mode & 0o777).toBe(0o600);
    }
  });

  test('refuses to enrol without a way to verify the Console, with a wrong pin (the token stays unused), or mixed with --rules', async () => {
    const { id, token } = await newJoinToken();
    const base = ['--console', consoleProc.url, '--docker', inject('dockerHost'), '--host-name', 'never-enrolled', '--listen', '127.0.0.1:0'];
    const state = (name: string): string[] => ['--state', join(work, `state-${name}`)];
    const noVerify = await runDefenderCli([...base, ...state('a'), '--join-token', token]);
    expect(noVerify.code).toBe(2);
    expect(noVerify.stderr).toMatch(/the Defender must be able to verify the Console: give --console-ca FILE .* or --console-pin/);
    const wrongPin = await runDefenderCli([...base, ...state('b'), '--join-token', token, '--console-pin', `sha256//${Buffer.alloc(32, 7).toString('base64')}`]);
    expect(wrongPin.code).toBe(2);
    expect(wrongPin.stderr).toMatch(/does not match --console-pin; refusing to talk to it/);
    const tokens = (await api('GET', '/api/v1/defenders/join-tokens')).body.items as { id: string; uses: number; status: string }[];
    expect(tokens.find((t) => t.id === id)).toMatchObject({ uses: 0, status: 'active' }); // never sent to a Console it could not verify
    const mixed = await runDefenderCli([...base, ...state('c'), '--rules', 'rules.yaml']);
    expect(mixed.code).toBe(2);
    expect(mixed.stderr).toMatch(/--console cannot be combined with --rules/);
    const notEnrolled = await runDefenderCli([...base, ...state('d')]);
    expect(notEnrolled.code).toBe(2);
    expect(notEnrolled.stderr).toMatch(/not enrolled yet .*give --join-token/);
  });
});

describe('live policy', () => {
  test('a rule changed in the Console is enforced by both Defenders within a second or so', async () => {
    expect((await dockerPs(devA.host, bruce.dir)).ok).toBe(true);
    expect((await dockerPs(prodA.host, bruce.dir)).message).toContain("denied for user 'bruce' by the default deny-all rule");

    await putRule({ hosts: ['*'], actions: ACTIONS });
    const allowed = await Promise.all([untilPs('prod-a to allow', prodA.host, bruce.dir, { ok: true }), untilPs('dev-a to still allow', devA.host, bruce.dir, { ok: true })]);

    await putRule({ hosts: ['*'], actions: ACTIONS.filter((a) => a !== 'container_list') });
    const denied = await Promise.all(
      [devA, prodA].map((d) => untilPs(`${d.host} to deny`, d.host, bruce.dir, { ok: false, message: "The command 'container_list' denied for user 'bruce' by the default deny-all rule" })),
    );
    console.log(`rule change → enforced (including one docker CLI run): allow ${allowed.join('/')} ms, deny ${denied.join('/')} ms`);

    await putRule({ hosts: ['*'], actions: ACTIONS });
    await Promise.all([devA, prodA].map((d) => untilPs(`${d.host} to allow again`, d.host, bruce.dir, { ok: true })));
  });
});

describe('the Console away and back', () => {
  test('while the Console is down both keep enforcing the last policy (also across a restart, from the encrypted cache) and keep their audit', async () => {
    await Promise.all([auditDelivered(devA, 'dev-a'), auditDelivered(prodA, 'prod-a')]);
    await consoleProc.stop();
    for (const d of [devA, prodA]) {
      expect(await dockerPs(d.host, bruce.dir)).toMatchObject({ ok: true });
      expect((await docker(['version', '--format', '{{.Server.Version}}'], { env: envFor(d.host, bruce.dir) })).code).toBe(0);
    }
    await pollUntil('dev-a to notice', () => /lost the Console connection; enforcing the last policy/.test(devA.log()));

    prodA = await prodA.restart(); // no Console: the cached policy
    expect(prodA.log()).toMatch(/enforcing the cached policy until the Console sends a newer one version=\d+/);
    expect(await dockerPs(prodA.host, bruce.dir)).toMatchObject({ ok: true });
    // A burst of requests with 9 KB paths (cut to 8 KiB in the audit): 150 of them are over the Console's 1 MiB
    // body limit as one batch; they must still all arrive (next test), and so must everything audited after them.
    const burst = await RawTlsClient.connect(prodA.port, bruce.dir);
    try {
      const long = (i: number): string => `/v1.41/containers/${'a'.repeat(9000)}-${i}/json`;
      await burst.write(Buffer.concat(Array.from({ length: 150 }, (_, i) => rawRequest('GET', long(i)))));
      for (let i = 0; i < 150; i++) {
        const r = await burst.readResponse();
        expect(r.status, r.text()).toBe(404); // allowed: dockerd's own answer
      }
    } finally {
      burst.destroy();
    }
    expect(await dockerPs(prodA.host, bruce.dir)).toMatchObject({ ok: true });

    // A cache that does not decrypt is ignored: with no Console either, everything is denied, saying why.
    const devDir = devA.stateDir;
    devA = await restartWith(devA, async () => {
      const sealed = await readFile(join(devDir, 'policy.cache'));
      sealed[sealed.length - 1]! ^= 0x01; // one bit of the ciphertext: GCM refuses it
      await writeFile(join(devDir, 'policy.cache'), sealed);
    });
    expect(devA.log()).toMatch(/ignoring the policy cache .*does not decrypt/);
    expect(await dockerPs(devA.host, bruce.dir)).toEqual({ ok: false, message: `Error response from daemon: ${NO_POLICY}` });

    const backlog = (await devA.audit()).length;
    expect(backlog).toBeGreaterThan(0);
  });

  test('when the Console is back the Defenders resync and the spooled audit arrives, nothing lost and nothing twice', async () => {
    consoleProc = await consoleProc.restart();
    await untilPs('dev-a to get the policy again', devA.host, bruce.dir, { ok: true }, 60_000);
    const [dev, prod] = await Promise.all([auditDelivered(devA, 'dev-a'), auditDelivered(prodA, 'prod-a')]);
    expect(dev).toBeGreaterThan(5);
    expect(prod).toBeGreaterThan(5);
    const denials = (await consoleAudit('dev-a')).filter((e) => e.decision === 'deny');
    expect(denials.length).toBeGreaterThan(0);
  });
});

describe('listener type switched live', () => {
  test('TCP → UNIX socket → TCP without a restart; a stream open on the old listener keeps flowing', async () => {
    const name = `dbcd-tick-${randomBytes(3).toString('hex')}`;
    const dockerHost = inject('dockerHost');
    const created = await daemonRequest(dockerHost, 'POST', `/containers/create?name=${name}`, {
      Image: inject('testImage'),
      Cmd: ['sh', '-c', 'i=0; while true; do i=$((i+1)); echo "tick $i"; sleep 0.05; done'],
      Labels: { [LABEL.split('=')[0]!]: LABEL.split('=')[1]! },
    });
    expect(created.status, created.body).toBe(201);
    expect((await daemonRequest(dockerHost, 'POST', `/containers/${name}/start`)).status).toBe(204);
    const logs: RunningDocker = startDocker(['logs', '-f', '--tail', '0', name], { env: envFor(devA.host, bruce.dir) });
    cleanup.push(async () => logs.kill());
    await logs.waitForStdout((out) => /tick \d+/.test(out), 20_000);

    const socketDir = await mkdtemp(join(tmpdir(), 'dbl-'));
    cleanup.push(() => rm(socketDir, { recursive: true, force: true }));
    const socketPath = join(socketDir, 'defender.sock');
    const put = await api('PUT', '/api/v1/defenders/dev-a/listener', { type: 'unix', path: socketPath });
    expect(put.status, put.text).toBe(200);
    await pollUntil('the UNIX socket to answer with mTLS', async () => (await mtlsGet({ path: socketPath }, bruce.dir, '/_ping')).body === 'OK');
    expect((await stat(socketPath)).mode & 0o777).toBe(0o660);
    await pollUntil('the old TCP port to refuse connections', async () => {
      try {
        await mtlsGet({ port: devA.port }, bruce.dir, '/_ping');
        return false;
      } catch (e) {
        return (e as NodeJS.ErrnoException).code === 'ECONNREFUSED';
      }
    });
    const before = logs.stdout().length;
    await logs.waitForStdout((out) => out.length > before + 20, 10_000); // the stream on the old listener flows on

    // The docker CLI speaks plain HTTP on unix://, so users relay the socket to a local port (socat does the same);
    // TLS stays end to end between the CLI and the Defender.
    const relayPort = await freePort();
    const relay = await relayTo(socketPath, relayPort);
    cleanup.push(() => new Promise((resolve) => relay.close(resolve)));
    expect(await dockerPs(`tcp://127.0.0.1:${relayPort}`, bruce.dir)).toMatchObject({ ok: true });
    await pollUntil('the Console to show the socket listener', async () => (await api('GET', '/api/v1/defenders/dev-a')).body.activeListener?.type === 'unix');

    const port = await freePort();
    expect((await api('PUT', '/api/v1/defenders/dev-a/listener', { type: 'tcp', address: `127.0.0.1:${port}` })).status).toBe(200);
    await untilPs('the new TCP listener', `tcp://127.0.0.1:${port}`, bruce.dir, { ok: true });
    await pollUntil('the socket file to be removed', async () => stat(socketPath).then(() => false, () => true));

    // A socket in a directory every user may write to (not sticky) is refused: another user could swap it for a
    // link before the Defender sets its mode and group. The switch fails, the TCP listener stays and says why.
    const openDir = await mkdtemp(join(tmpdir(), 'dbl-open-'));
    cleanup.push(() => rm(openDir, { recursive: true, force: true }));
    await chmod(openDir, 0o777);
    expect((await api('PUT', '/api/v1/defenders/dev-a/listener', { type: 'unix', path: join(openDir, 'defender.sock') })).status).toBe(200);
    await pollUntil('the Defender to refuse the socket directory', () => devA.log().includes(`the socket directory ${openDir} is one another user could change`));
    expect(await stat(join(openDir, 'defender.sock')).then(() => true, () => false)).toBe(false);
    await untilPs('the TCP listener, still', `tcp://127.0.0.1:${port}`, bruce.dir, { ok: true });
    expect((await api('PUT', '/api/v1/defenders/dev-a/listener', { type: 'tcp', address: `127.0.0.1:${port}` })).status).toBe(200);
    logs.kill();
    devAPort = port;
  });
});

describe('revocation', () => {
  test('a revoked certificate is refused within seconds, also on a keep-alive connection opened before', async () => {
    const conn = await RawTlsClient.connect(devAPort, bruceOld.dir);
    cleanup.push(async () => conn.destroy());
    await conn.write(rawRequest('GET', '/_ping'));
    expect((await conn.readResponse()).status).toBe(200);

    const r = await api('DELETE', `/api/v1/certs/${bruceOld.serial}`);
    expect(r.status, r.text).toBe(200);
    const started = Date.now();
    await pollUntil('the open connection to be refused', async () => {
      await conn.write(rawRequest('GET', '/_ping'));
      const res = await conn.readResponse();
      return res.status === 403 && res.json<{ message: string }>().message === REVOKED;
    }, 10_000, 50);
    console.log(`revocation → refused on an open connection after ${Date.now() - started} ms`);
    // The other Defender gets the same push on its own stream: it converges within seconds too, not at the same instant.
    await untilPs('prod-a to refuse the revoked certificate', prodA.host, bruceOld.dir, { ok: false, message: REVOKED }, 10_000);
    expect(await dockerPs(prodA.host, bruceOld.dir)).toEqual({ ok: false, message: `Error response from daemon: ${REVOKED}` });
    expect(await dockerPs(`tcp://127.0.0.1:${devAPort}`, bruce.dir)).toMatchObject({ ok: true }); // only that certificate
    expect(await dockerPs(prodA.host, bruce.dir)).toMatchObject({ ok: true });
  });
});

describe('re-enrolment', () => {
  test('--re-enroll keeps the spool and its numbering; the new enrolment stores every event once, from where it went on', async () => {
    await untilPs('prod-a serving', prodA.host, bruce.dir, { ok: true });
    const before = await auditDelivered(prodA, 'prod-a');
    const token = await api('POST', '/api/v1/defenders/join-tokens', { hostName: 'prod-a' });
    expect(token.status, token.text).toBe(201);
    const old = prodA;
    prodA = undefined as unknown as DefenderProcess;
    old.child.kill('SIGTERM'); // stopped, its directory (state, spool, local audit copy) kept
    await new Promise((resolve) => (old.child.exitCode !== null || old.child.signalCode !== null ? resolve(null) : old.child.once('exit', resolve)));
    prodA = await startDefenderProcess({ dockerHost: inject('dockerHost'), hostName: 'prod-a', stateDir: old.stateDir, args: ['--re-enroll'], console: { url: consoleProc.url, joinToken: token.body.token, pin: await consolePin(consoleProc.port) } }, old.dir);
    expect(prodA.log()).not.toMatch(/ERROR/);
    await untilPs('prod-a serving after its re-enrolment', prodA.host, bruce.dir, { ok: true });
    expect((await dockerPs(prodA.host, bruce.dir)).ok).toBe(true);
    expect(await auditDelivered(prodA, 'prod-a')).toBeGreaterThan(before);
  });
});

describe('shutdown', () => {
  test('SIGTERM stops a Console-managed Defender cleanly', async () => {
    const stopping = prodA;
    prodA = undefined as unknown as DefenderProcess;
    expect(await stopping.stop()).toBe(0);
    expect(stopping.log()).toMatch(/shutting down signal=SIGTERM/);
  });
});

/** Stops `d`, runs `between`, starts it again on the same state. */
async function restartWith(d: DefenderProcess, between: () => Promise<unknown>): Promise<DefenderProcess> {
  const restarted = d.restart.bind(d);
  // restart() stops first; `between` must run after the stop and before the start, so stop here ourselves.
  d.child.kill('SIGTERM');
  await new Promise((resolve) => (d.child.exitCode !== null || d.child.signalCode !== null ? resolve(null) : d.child.once('exit', resolve)));
  await between();
  return restarted();
}
