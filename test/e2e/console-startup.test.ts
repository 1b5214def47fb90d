// The Console's first start and what survives it, through the real binary: the one-time admin password, what a
// restart keeps (users, CA, TLS pin), what is kept at rest (master key file, database file), refusals to start with
// a wrong or exposed master key, and configuration errors.
import { spawn } from 'node:child_process';
import { createHash, randomBytes, X509Certificate } from 'node:crypto';
import { chmod, mkdtemp, readdir, readFile, rename, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { connect } from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { consoleClient, freePort, startConsoleProcess, type ConsoleProcess } from '../support/console-process.js';
import { DRAWBRIDGE_BIN } from '../support/defender-process.js';

const PASSWORD = 'a-long-enough-password';
const BASE_ENV = Object.fromEntries(Object.entries(process.env).filter(([k]) => k !== 'DRAWBRIDGE_ADMIN_PASSWORD' && k !== 'DRAWBRIDGE_MASTER_KEY'));

interface Spawned {
  stderr(): string;
  stdout(): string;
  readonly exited: Promise<number | null>;
  waitFor(re: RegExp): Promise<RegExpExecArray>;
  stop(): Promise<number | null>;
}

/** `drawbridge console ARGS` with no admin password or master key in the environment unless given. */
function spawnConsole(args: readonly string[], env: NodeJS.ProcessEnv = {}): Spawned {
  const child = spawn(process.execPath, [DRAWBRIDGE_BIN, 'console', ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...BASE_ENV, ...env } });
  let out = '';
  let err = '';
  child.stdout.setEncoding('utf8').on('data', (s: string) => (out += s));
  child.stderr.setEncoding('utf8').on('data', (s: string) => (err += s));
  const exited = new Promise<number | null>((res) => child.once('exit', (code) => res(code)));
  return {
    stderr: () => err,
    stdout: () => out,
    exited,
    waitFor: (re) =>
      new Promise((res, rej) => {
        const timer = setTimeout(() => rej(new Error(`no ${re} in 20 s:\n${err}`)), 20_000);
        const check = (): void => {
          const m = re.exec(err);
          if (m) {
            clearTimeout(timer);
            child.stderr.off('data', check);
            res(m);
          }
        };
        child.stderr.on('data', check);
        void exited.then((code) => {
          clearTimeout(timer);
          rej(new Error(`exited with ${code} before ${re}:\n${err}`));
        });
        check();
      }),
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      return exited;
    },
  };
}

/** Runs `drawbridge console ARGS` that is expected to exit by itself. */
async function runToExit(args: readonly string[], env: NodeJS.ProcessEnv = {}): Promise<{ code: number | null; stderr: string; stdout: string }> {
  const p = spawnConsole(args, env);
  const timer = setTimeout(() => void p.stop(), 20_000);
  const code = await p.exited;
  clearTimeout(timer);
  return { code, stderr: p.stderr(), stdout: p.stdout() };
}

const scratch: string[] = [];
const scratchDir = async (): Promise<string> => {
  const dir = await mkdtemp(join(tmpdir(), 'drawbridge-console-auth-'));
  scratch.push(dir);
  return dir;
};
afterAll(async () => {
  await Promise.all(scratch.map((d) => rm(d, { recursive: true, force: true })));
});

/** Every file under `dir`, recursively. */
async function filesUnder(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { recursive: true, withFileTypes: true });
  return entries.filter((e) => e.isFile()).map((e) => join(e.parentPath, e.name));
}

const pinOf = (command: string): string => /--pinnedpubkey '?(sha256\/\/[A-Za-z0-9+/=]+)'?/.exec(command)![1]!;

/** The sha256// pin of the public key the Console actually serves. */
function servedPin(port: number, ca: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port, ca, servername: 'localhost' }, () => {
      const spki = socket.getPeerX509Certificate()!.publicKey.export({ type: 'spki', format: 'der' });
      socket.end();
      resolve(`sha256//${createHash('sha256').update(spki).digest('base64')}`);
    });
    socket.on('error', reject);
  });
}

describe('first start', () => {
  it('without DRAWBRIDGE_ADMIN_PASSWORD prints a one-time admin password once, and not again on restart', async () => {
    const dir = await scratchDir();
    const port = await freePort();
    const args = ['--listen', `127.0.0.1:${port}`, '--data', join(dir, 'data'), '--master-key-file', join(dir, 'keys', 'master.key'), '--public-url', `https://127.0.0.1:${port}`];
    const first = spawnConsole(args);
    const password = (await first.waitFor(/one-time password (\S+)\n/))[1]!;
    expect(password.length).toBeGreaterThanOrEqual(20);
    expect(first.stderr().split(password).length - 1).toBe(1);
    expect(first.stdout()).not.toContain(password);
    expect(first.stderr()).toMatch(/created the master key file/);
    const client = consoleClient(`https://127.0.0.1:${port}`, (await consoleClient(`https://127.0.0.1:${port}`).call('GET', '/api/v1/ca')).body.pem);
    const token = await client.login('admin', password);
    expect((await client.call('GET', '/api/v1/auth/me', { token })).body).toMatchObject({ name: 'admin', role: 'admin' });
    expect((await client.call('POST', '/api/v1/users', { token, json: { name: 'kept', password: PASSWORD } })).status).toBe(201);
    expect(await first.stop()).toBe(0);

    const second = spawnConsole(args);
    await second.waitFor(/listening listen=/);
    // The one-time password still works (it was stored, not reissued), and so does the user made with it.
    await client.login('admin', password);
    await client.login('kept', PASSWORD);
    expect(second.stderr()).not.toMatch(/one-time|password/);
    expect(second.stderr()).not.toContain(password);
    expect(second.stderr()).not.toMatch(/created the master key file/);
    expect(await second.stop()).toBe(0);
  });
});

describe('at rest and across restarts', () => {
  let rest: ConsoleProcess;
  let restAdmin: string;
  beforeAll(async () => {
    rest = await startConsoleProcess();
    restAdmin = await rest.adminToken();
    expect((await rest.call('POST', '/api/v1/users', { token: restAdmin, json: { name: 'persisted', password: PASSWORD, role: 'auditor', groups: ['g1'] } })).status).toBe(201);
  });
  afterAll(async () => {
    await rest?.stop({ remove: true });
  });
  const keyFile = () => join(rest.dir, 'master.key');
  const dataDir = () => join(rest.dir, 'data');

  it('a restart on the same data directory keeps users, the CA and the TLS key (the install command pin)', async () => {
    const ca = await rest.call('GET', '/api/v1/ca');
    const pin = pinOf((await rest.call('POST', '/api/v1/certs/install-command', { token: restAdmin })).body.command);
    expect(pin).toBe(await servedPin(rest.port, rest.caPem));
    const users = (await rest.call('GET', '/api/v1/users', { token: restAdmin })).body.items;

    expect(await rest.stop()).toBe(0);
    rest = await rest.restart();

    expect(rest.log()).not.toMatch(/one-time|created the master key file/);
    const caAfter = await rest.call('GET', '/api/v1/ca');
    expect(caAfter.body.fingerprintSha256).toBe(ca.body.fingerprintSha256);
    expect(caAfter.body.pem).toBe(ca.body.pem);
    expect(new X509Certificate(caAfter.body.pem).fingerprint256).toBe(ca.body.fingerprintSha256);
    // Pinned to the CA from before the restart, TLS still verifies.
    expect((await consoleClient(rest.url, ca.body.pem).call('GET', '/api/v1/ca')).status).toBe(200);
    restAdmin = await rest.adminToken();
    expect(pinOf((await rest.call('POST', '/api/v1/certs/install-command', { token: restAdmin })).body.command)).toBe(pin);
    expect(await servedPin(rest.port, rest.caPem)).toBe(pin);
    expect((await rest.call('GET', '/api/v1/users', { token: restAdmin })).body.items).toEqual(users);
    const token = await rest.login('persisted', PASSWORD);
    expect((await rest.call('GET', '/api/v1/auth/me', { token })).body).toMatchObject({ name: 'persisted', role: 'auditor', groups: ['g1'] });
  });

  it('creates the master key file 0600 outside the data directory, which is 0700', async () => {
    const key = await stat(keyFile());
    expect(key.mode & 0o777).toBe(0o600);
    const keyText = (await readFile(keyFile(), 'utf8')).trim();
    expect(Buffer.from(keyText, 'base64')).toHaveLength(32);
    expect(relative(dataDir(), keyFile()).startsWith('..')).toBe(true);
    expect((await stat(dataDir())).mode & 0o777).toBe(0o700);
    for (const file of await filesUnder(dataDir())) {
      expect((await readFile(file)).includes(keyText), file).toBe(false);
      expect((await readFile(file)).includes(Buffer.from(keyText, 'base64')), file).toBe(false);
    }
  });

  it('keeps the SQLite files 0600, with no private key in clear', async () => {
    const check = async (): Promise<Buffer> => {
      const files = await filesUnder(dataDir());
      expect(files.map((f) => relative(dataDir(), f))).toContain('console.db');
      for (const file of files) {
        expect((await stat(file)).mode & 0o777, file).toBe(0o600);
        expect((await readFile(file)).includes('PRIVATE KEY'), file).toBe(false);
      }
      return readFile(join(dataDir(), 'console.db'));
    };
    await check(); // running: the WAL files too
    expect(await rest.stop()).toBe(0);
    const db = await check(); // stopped: everything checkpointed into console.db
    // It does hold the CA certificate in clear, so the search above looks at the right bytes.
    expect(db.includes('BEGIN CERTIFICATE')).toBe(true);
    expect(db.includes('v1.')).toBe(true); // the sealed keys
    rest = await rest.restart();
  });

  it('refuses to start with a master key file readable by others: exit 2, saying chmod 600', async () => {
    expect(await rest.stop()).toBe(0);
    await chmod(keyFile(), 0o644);
    const args = ['--listen', '127.0.0.1:0', '--data', dataDir(), '--master-key-file', keyFile()];
    const r = await runToExit(args);
    expect(r.code, r.stderr).toBe(2);
    expect(r.stderr).toContain(`run: chmod 600 ${keyFile()}`);
    expect(r.stderr).toContain('mode 644');
    expect(r.stderr).not.toMatch(/^\s+at /m);
    await chmod(keyFile(), 0o600);
    rest = await rest.restart();
    expect((await rest.call('GET', '/api/v1/auth/me', { token: await rest.login('persisted', PASSWORD) })).status).toBe(200);
  });

  it('refuses to start when the key file of existing data is missing, and writes no new key', async () => {
    expect(await rest.stop()).toBe(0);
    const moved = `${keyFile()}.moved`;
    await rename(keyFile(), moved);
    const r = await runToExit(['--listen', '127.0.0.1:0', '--data', dataDir(), '--master-key-file', keyFile()]);
    expect(r.code, r.stderr).toBe(2);
    expect(r.stderr).toContain(`the master key file ${keyFile()} is missing, and the data directory holds data encrypted with it`);
    await expect(stat(keyFile())).rejects.toThrow(/ENOENT/);
    await rename(moved, keyFile());
    rest = await rest.restart();
    expect((await rest.call('GET', '/api/v1/auth/me', { token: await rest.login('persisted', PASSWORD) })).status).toBe(200);
  });

  it('refuses to start with another master key for existing data: exit 2, a clear message, nothing changed', async () => {
    expect(await rest.stop()).toBe(0);
    const args = ['--listen', '127.0.0.1:0', '--data', dataDir(), '--master-key-file', keyFile()];
    const dbBefore = await readFile(join(dataDir(), 'console.db'));
    const other = randomBytes(32).toString('base64');
    const wrong = await runToExit(args, { DRAWBRIDGE_MASTER_KEY: other });
    expect(wrong.code, wrong.stderr).toBe(2);
    expect(wrong.stderr).toMatch(/^drawbridge console: a value is sealed with master key [0-9a-f]{8}, but the configured master key is [0-9a-f]{8}: give the key it was sealed with as the master key or as a previous key \(--previous-master-key-file\)\n$/m);
    expect(wrong.stderr).not.toMatch(/^\s+at /m);
    expect(wrong.stderr).not.toContain(other);
    const malformed = await runToExit(args, { DRAWBRIDGE_MASTER_KEY: 'bm90IDMyIGJ5dGVz' });
    expect(malformed.code, malformed.stderr).toBe(2);
    expect(malformed.stderr).toContain('the master key must be 32 bytes');
    expect(await readFile(join(dataDir(), 'console.db'))).toEqual(dbBefore);
    // The right key still opens it.
    rest = await rest.restart();
    expect((await rest.call('GET', '/api/v1/users/persisted', { token: await rest.adminToken() })).body.role).toBe('auditor');
  });
});

describe('configuration', () => {
  it('names an unknown flag: exit 2', async () => {
    const dir = await scratchDir();
    const r = await runToExit(['--data', join(dir, 'data'), '--frobnicate', 'yes']);
    expect(r.code, r.stderr).toBe(2);
    expect(r.stderr).toContain("Unknown option '--frobnicate'");
    expect(r.stderr).toContain("drawbridge console --help");
    await expect(stat(join(dir, 'data'))).rejects.toThrow(/ENOENT/);
  });

  it('--help: exit 0, every option listed', async () => {
    for (const flag of ['--help', '-h']) {
      const r = await runToExit([flag]);
      expect(r.code, r.stderr).toBe(0);
      expect(r.stdout).toMatch(/^Usage: drawbridge console \[options\]/);
      for (const option of ['--listen', '--data', '--master-key-file', '--admin-password', '--public-url', '--tls-names', '--session-ttl', '--cert-max-lifetime', '--install-token-ttl', '--config', '--help', 'DRAWBRIDGE_MASTER_KEY', 'DRAWBRIDGE_ADMIN_PASSWORD']) {
        expect(r.stdout, option).toContain(option);
      }
    }
  });

  it.each([
    [['--listen', 'nonsense'], '--listen: must be HOST:PORT'],
    [['--session-ttl', '59'], '--session-ttl:'],
    [['--admin-password', 'short'], '--admin-password: must be at least 12 characters'],
    [['--public-url', 'http://example.com'], '--public-url: must be an https:// URL'],
  ])('refuses %j: exit 2 naming the option', async (args, message) => {
    const dir = await scratchDir();
    const r = await runToExit(['--data', join(dir, 'data'), ...args]);
    expect(r.code, r.stderr).toBe(2);
    expect(r.stderr).toContain(message);
    expect(r.stderr).not.toMatch(/^\s+at /m);
    await expect(stat(join(dir, 'data'))).rejects.toThrow(/ENOENT/);
  });
});

