// The User Certificates install flow end to end: the exact `curl … | sh` command the Console returns, run by a real
// sh in a throwaway HOME, installs ca.pem/cert.pem/key.pem in ~/.docker (0700/0600, backups on a second run);
// then the real docker CLI, with nothing but those default files, goes through a real Defender whose server
// certificate the same Console issued, and the Defender's audit names the user. Revocation shows in the Console.
import 'reflect-metadata'; // @peculiar/x509 (tsyringe) needs it loaded first
import { spawn, spawnSync } from 'node:child_process';
import { createPrivateKey, createPublicKey, X509Certificate } from 'node:crypto';
import { mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { identityFromCertificate } from '../../shared/identity/certificate-identity.js';
import { startConsoleProcess, type ConsoleProcess } from '../support/console-process.js';
import { makeCsr } from '../support/csr.js';
import { startDefenderProcess, type DefenderProcess } from '../support/defender-process.js';
import { docker } from '../support/docker-cli.js';
import type {} from '../support/global-setup.js'; // the ProvidedContext keys

const PASSWORD = 'a-long-enough-password';
const FILES = ['ca.pem', 'cert.pem', 'key.pem'] as const;

let c: ConsoleProcess;
let home: string;
let aliceToken: string;
let defender: DefenderProcess | undefined;

/** The environment of a user with a fresh HOME and nothing Docker-related set. */
function userEnv(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, HOME: home, ...extra };
  for (const k of ['DOCKER_CERT_PATH', 'DOCKER_CONFIG', 'DOCKER_CONTEXT', 'DOCKER_HOST', 'DOCKER_TLS_VERIFY']) if (!(k in extra)) delete env[k];
  return env;
}

function runSh(command: string, env: NodeJS.ProcessEnv): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn('sh', ['-c', command], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (s: string) => (stdout += s));
    child.stderr.setEncoding('utf8').on('data', (s: string) => (stderr += s));
    const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
    child.once('error', reject);
    child.once('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

async function installCommand(): Promise<string> {
  const r = await c.call('POST', '/api/v1/certs/install-command', { token: aliceToken });
  expect(r.status, r.text).toBe(201);
  return r.body.command;
}

const mode = async (path: string): Promise<number> => (await stat(path)).mode & 0o777;
const dockerDir = (): string => join(home, '.docker');
const readInstalled = async (): Promise<Record<string, string>> =>
  Object.fromEntries(await Promise.all(FILES.map(async (f) => [f, await readFile(join(dockerDir(), f), 'utf8')] as const)));

beforeAll(async () => {
  c = await startConsoleProcess();
  const admin = await c.adminToken();
  const r = await c.call('POST', '/api/v1/users', { token: admin, json: { name: 'alice', password: PASSWORD, role: 'user', groups: ['devs'] } });
  expect(r.status, r.text).toBe(201);
  aliceToken = await c.login('alice', PASSWORD);
  home = await mkdtemp(join(tmpdir(), 'drawbridge-home-'));
});

afterAll(async () => {
  await defender?.stop();
  await c?.stop({ remove: true });
  if (home) await rm(home, { recursive: true, force: true });
});

describe('curl … | sh installs the certificate in ~/.docker', () => {
  let first: Record<string, string>;

  it('writes ca.pem, cert.pem and key.pem, 0600 in a 0700 directory, for the logged-in user', async () => {
    const command = await installCommand();
    const r = await runSh(command, userEnv());
    expect(r.code, `${r.stdout}\n${r.stderr}`).toBe(0);
    expect(r.stdout).toContain(`Installed a Docker client certificate for CN = alice, OU = devs`);
    expect(r.stdout).toContain('export DOCKER_HOST=tcp://');
    expect(r.stdout).not.toContain('Backed up');
    expect(await mode(dockerDir())).toBe(0o700);
    for (const f of FILES) expect(await mode(join(dockerDir(), f)), f).toBe(0o600);
    expect((await readdir(dockerDir())).sort()).toEqual([...FILES]); // the work directory is gone
    first = await readInstalled();
    expect(first['ca.pem']).toBe(c.caPem);
    const cert = new X509Certificate(first['cert.pem']!);
    expect(identityFromCertificate(new Uint8Array(cert.raw))).toEqual({ user: 'alice', groups: ['devs'] });
    expect(cert.checkIssued(new X509Certificate(c.caPem))).toBe(true);
    expect(first['key.pem']).toMatch(/^-----BEGIN EC PRIVATE KEY-----/);
    const keyPub = createPublicKey(createPrivateKey(first['key.pem']!)).export({ type: 'spki', format: 'der' });
    expect(cert.publicKey.export({ type: 'spki', format: 'der' }).equals(keyPub)).toBe(true);
  });

  it('the same command a second time fails cleanly and touches nothing', async () => {
    const command = await installCommand();
    expect((await runSh(command, userEnv())).code).toBe(0);
    const now = await readInstalled();
    const again = await runSh(command, userEnv());
    expect(again.code).toBe(1);
    expect(again.stderr).toContain('drawbridge install: this install command was already used');
    expect(await readInstalled()).toEqual(now);
    first = now;
  });

  it('a new command over existing files backs them up as <name>.bak-<timestamp> and says so', async () => {
    const before = new Set(await readdir(dockerDir()));
    const r = await runSh(await installCommand(), userEnv());
    expect(r.code, `${r.stdout}\n${r.stderr}`).toBe(0);
    const added = (await readdir(dockerDir())).filter((f) => !before.has(f)).sort();
    expect(added).toHaveLength(3);
    for (const f of FILES) {
      const backup = added.find((b) => b.startsWith(`${f}.bak-`));
      expect(backup, f).toMatch(new RegExp(`^${f.replace('.', '\\.')}\\.bak-\\d{8}T\\d{6}Z(\\.\\d+)?$`));
      expect(await readFile(join(dockerDir(), backup!), 'utf8')).toBe(first[f]);
      expect(await mode(join(dockerDir(), backup!))).toBe(0o600);
      expect(r.stdout).toContain(`Backed up the existing ${join(dockerDir(), f)} to ${join(dockerDir(), backup!)}`);
    }
    const now = await readInstalled();
    expect(now['cert.pem']).not.toBe(first['cert.pem']);
    expect(now['key.pem']).not.toBe(first['key.pem']);
  });

  it('honours DOCKER_CERT_PATH and says to export it', async () => {
    const dir = join(home, 'elsewhere', 'certs');
    const r = await runSh(await installCommand(), userEnv({ DOCKER_CERT_PATH: dir }));
    expect(r.code, r.stderr).toBe(0);
    expect((await readdir(dir)).sort()).toEqual([...FILES]);
    expect(await mode(dir)).toBe(0o700);
    expect(r.stdout).toContain(`export DOCKER_CERT_PATH=${dir}`);
  });

  it("puts the token in no process's arguments (any user of the machine can read them in /proc)", async () => {
    // Every external command the install runs goes through a wrapper that records its arguments.
    const bin = join(home, 'recording-bin');
    const argvLog = join(home, 'argv.log');
    await mkdir(bin);
    for (const tool of ['curl', 'openssl', 'awk', 'sed', 'mkdir', 'chmod', 'rm', 'mv', 'cat', 'date', 'head']) {
      const real = spawnSync('sh', ['-c', `command -v ${tool}`], { encoding: 'utf8' }).stdout.trim();
      await writeFile(join(bin, tool), `#!/bin/sh\nprintf '%s\\n' "${tool} $*" >> '${argvLog}'\nexec '${real}' "$@"\n`, { mode: 0o755 });
    }
    const command = await installCommand();
    const token = /X-Drawbridge-Install-Token: (dbi_[A-Za-z0-9_-]+)/.exec(command)![1]!;
    const env = userEnv({ DOCKER_CERT_PATH: join(home, 'recorded'), PATH: `${bin}:${process.env.PATH}` });
    const r = await runSh(command, env);
    expect(r.code, r.stderr).toBe(0);
    const argv = await readFile(argvLog, 'utf8');
    expect(argv.split('\n').filter((l) => l.startsWith('curl ')), argv).toHaveLength(2); // the script, and the CSR
    expect(argv).not.toContain(token);
  });

  it('a wrong pin stops curl before anything is sent', async () => {
    const command = await installCommand();
    const wrong = command.replace(/sha256\/\/[^']+/, `sha256//${Buffer.alloc(32).toString('base64')}`);
    const r = await runSh(wrong, userEnv({ DOCKER_CERT_PATH: join(home, 'pinned') }));
    expect(r.stderr).toMatch(/pinned public key|public key does not match/i);
    expect(await stat(join(home, 'pinned')).catch(() => null)).toBeNull();
  });
});

describe('the docker CLI with the installed files, through a Defender serving a Console-issued certificate', () => {
  let serial: string;

  beforeAll(async () => {
    const { csr, key } = await makeCsr('CN=defender');
    const admin = await c.adminToken();
    const server = await c.call('POST', '/api/v1/certs/server', { token: admin, json: { csr, dnsNames: ['localhost'], ips: ['127.0.0.1'] } });
    expect(server.status, server.text).toBe(201);
    defender = await startDefenderProcess({
      dockerHost: inject('dockerHost'),
      rules: 'rules:\n  - name: devs-everything\n    effect: allow\n    groups: [devs]\n',
      tls: { ca: c.caPem, cert: server.body.cert, key },
    });
    serial = new X509Certificate(await readFile(join(dockerDir(), 'cert.pem'))).serialNumber.toLowerCase();
  });

  it('docker ps works with only HOME, DOCKER_HOST and DOCKER_TLS_VERIFY set, and the audit names alice', async () => {
    const r = await docker(['ps'], { env: userEnv({ DOCKER_HOST: defender!.host, DOCKER_TLS_VERIFY: '1' }) });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^CONTAINER ID/);
    const audit = await defender!.audit();
    expect(audit.find((e) => e.action === 'container_list')).toMatchObject({ user: 'alice', groups: ['devs'], decision: 'allow' });
  });

  it('revoking the certificate shows in the Console (enforcement by Defenders comes with the push hub)', async () => {
    const r = await c.call('DELETE', `/api/v1/certs/${serial}`, { token: aliceToken });
    expect(r.status, r.text).toBe(200);
    const listed = await c.call('GET', '/api/v1/certs?user=alice', { token: await c.adminToken() });
    expect(listed.body.items.find((x: { serial: string }) => x.serial === serial)).toMatchObject({ status: 'revoked', revokedAt: expect.any(String) });
  });
});
