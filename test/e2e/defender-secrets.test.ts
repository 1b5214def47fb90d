// Secrets end to end: a real Console (built-in secret store, secret rules) and a real Defender enrolled with it in
// front of the private dockerd, driven with the real docker CLI. Env secrets reach the process and are redacted in
// `docker inspect` (every API version prefix); file secrets are on an in-memory directory mounted read-only at
// /run/secrets with the rule's mode, gone from the host when the container stops and back when it starts through
// the Defender; commit, export, cp (also through a symlink) and --volumes-from are refused; rotation reaches a
// running container's file; with the Console stopped (and across a Defender restart) injection goes on from the
// encrypted cache; no secret value is found in logs, audit or data directories.
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdtemp, readdir, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, test } from 'vitest';
import { startConsoleProcess, type ConsoleProcess } from '../support/console-process.js';
import { consoleUserCert, dockerEnvFor } from '../support/console-user-cert.js';
import { daemonRequest, removeLabelled } from '../support/daemon-request.js';
import { startDefenderProcess, type DefenderProcess } from '../support/defender-process.js';
import { adminApi, dockerAs } from '../support/e2e-drivers.js';
import type {} from '../support/global-setup.js';
import { pollUntil } from '../support/poll.js';
import { RawTlsClient, rawRequest } from '../support/tls-client.js';

const LABEL = 'drawbridge.test=defender-secrets';
const tag = (): string => randomBytes(6).toString('hex');
// Random values, so that finding one anywhere means it leaked from here.
const DB_PASSWORD = `db-${tag()}-pw`;
const TLS_KEY = `tls-${tag()}-key`;
const TOKEN = `token-${tag()}-v1`;
const TOKEN_ROTATED = `token-${tag()}-v2`;
const COPYABLE = `copy-${tag()}-ok`;
const ALL_VALUES = [DB_PASSWORD, TLS_KEY, TOKEN, TOKEN_ROTATED, COPYABLE];

let work: string;
let secretsDir: string;
let consoleProc: ConsoleProcess;
let defender: DefenderProcess;
let bruce: { dir: string };
let image: string;
/** Logs of processes that were restarted (their successors' logs start empty). */
const pastLogs: [string, string][] = [];

const { api, apiOk } = adminApi(() => consoleProc);

const env = (): NodeJS.ProcessEnv => dockerEnvFor(defender.host, bruce.dir, join(work, 'docker-config'));
const { run, runOk } = dockerAs(env);
const labels = (app: string): string[] => ['--label', LABEL, '--label', `app=${app}`];

/** A long-running container created through the Defender. */
async function startContainer(app: string, extra: string[] = []): Promise<string> {
  const name = `dbsec-${app}-${tag()}`;
  await runOk(['run', '-d', '--name', name, ...labels(app), ...extra, image, 'sleep', '600']);
  return name;
}

/** The host directory holding a container's secret files (from its marker label, read past the Defender). */
async function hostDirOf(name: string): Promise<string> {
  const c = (await daemonRequest(inject('dockerHost'), 'GET', `/containers/${name}/json`)).json<{ Config: { Labels: Record<string, string> } }>();
  return join(secretsDir, c.Config.Labels['io.drawbridge.secrets.instance']!);
}

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'dbsec-'));
  secretsDir = `/dev/shm/dbsec-${tag()}`;
  image = inject('testImage');
  consoleProc = await startConsoleProcess();
  await apiOk('POST', '/api/v1/rules', { name: 'devs', effect: 'allow', groups: ['devs'] }, 201);
  bruce = await consoleUserCert(consoleProc, work, 'bruce', ['devs']);

  await apiOk('POST', '/api/v1/secret-stores', { name: 'local', kind: 'builtin', config: {} }, 201);
  for (const [path, value] of [['db/password', DB_PASSWORD], ['tls/key', TLS_KEY], ['shared/token', TOKEN], ['copy/ok', COPYABLE]]) {
    await apiOk('PUT', '/api/v1/secret-stores/local/values', { path, value });
  }
  const rules = [
    { name: 'db-env', mode: 'env', secrets: [{ name: 'DB_PASSWORD', store: 'local', path: 'db/password' }], scope: { labels: ['app=billing'] } },
    { name: 'tls-root', mode: 'file', fileAccess: 'root', secrets: [{ name: 'tls.key', store: 'local', path: 'tls/key' }], scope: { labels: ['app=billing'] } },
    { name: 'token-all', mode: 'file', fileAccess: 'all', secrets: [{ name: 'token', store: 'local', path: 'shared/token' }], scope: { labels: ['app=billing'] } },
    { name: 'copyable', mode: 'file', secrets: [{ name: 'ok', store: 'local', path: 'copy/ok' }], scope: { labels: ['app=copyable'] }, allow: ['copy'] },
    { name: 'missing', mode: 'env', secrets: [{ name: 'NOPE', store: 'local', path: 'not/there' }], scope: { labels: ['app=missing'] } },
    { name: 'elsewhere', mode: 'env', secrets: [{ name: 'DB_PASSWORD', store: 'local', path: 'db/password' }], scope: { hosts: ['prod-*'] } },
  ];
  for (const rule of rules) await apiOk('POST', '/api/v1/secret-rules', rule, 201);

  const joinToken = (await apiOk<{ token: string }>('POST', '/api/v1/defenders/join-tokens', {}, 201)).token;
  defender = await startDefenderProcess({
    dockerHost: inject('dockerHost'),
    hostName: 'dev-s',
    console: { url: consoleProc.url, joinToken, ca: consoleProc.caPem },
    args: ['--secrets-dir', secretsDir],
  });
  await pollUntil('the Defender to have the secrets', async () => (await run(['run', '--rm', ...labels('billing'), image, 'sh', '-c', 'echo "[$DB_PASSWORD]"'])).stdout.includes(`[${DB_PASSWORD}]`), 30_000, 200);
});

afterAll(async () => {
  await removeLabelled(inject('dockerHost'), LABEL);
  await defender?.stop();
  await consoleProc?.stop({ remove: true });
  if (secretsDir) {
    try {
      execFileSync('umount', [secretsDir], { stdio: 'ignore' });
    } catch {
      /* the fallback directory, not a mount */
    }
    await rm(secretsDir, { recursive: true, force: true });
  }
  if (work) await rm(work, { recursive: true, force: true });
});

describe('env secrets', () => {
  test('the process sees the value (overriding a same-name -e), docker inspect shows it redacted, on every API version prefix', async () => {
    const out = await runOk(['run', '--rm', ...labels('billing'), '-e', 'DB_PASSWORD=mine', '-e', 'OTHER=1', image, 'env']);
    expect(out).toContain(`DB_PASSWORD=${DB_PASSWORD}\n`);
    expect(out).not.toContain('DB_PASSWORD=mine');
    expect(out).toContain('OTHER=1\n');

    const name = await startContainer('billing', ['-e', 'OTHER=1']);
    const inspected = await runOk(['inspect', name]);
    expect(inspected).toContain('"DB_PASSWORD=**redacted**"');
    expect(inspected).toContain('"OTHER=1"');
    expect(inspected).not.toContain(DB_PASSWORD);
    expect(await runOk(['inspect', '--format', '{{json .Config.Env}}', name])).toMatch(/"DB_PASSWORD=\*\*redacted\*\*"/);

    const client = await RawTlsClient.connect(defender.port, bruce.dir);
    try {
      for (const prefix of ['', '/v1.41', '/v1.24', '/v1.30']) {
        await client.write(rawRequest('GET', `${prefix}/containers/${name}/json`));
        const res = await client.readResponse();
        expect(res.status, `${prefix}: ${res.text()}`).toBe(200);
        expect(res.text()).not.toContain(DB_PASSWORD);
        expect(res.json<{ Config: { Env: string[] } }>().Config.Env).toContain('DB_PASSWORD=**redacted**');
      }
    } finally {
      client.destroy();
    }
    // The value really is in the container's config: the redaction is the Defender's.
    expect((await daemonRequest(inject('dockerHost'), 'GET', `/containers/${name}/json`)).body).toContain(`DB_PASSWORD=${DB_PASSWORD}`);

    const creates = (await defender.audit()).filter((e) => e.action === 'container_create' && e.secrets);
    expect(creates.at(-1)).toMatchObject({ decision: 'allow', secrets: { rules: ['db-env', 'tls-root', 'token-all'], names: ['DB_PASSWORD', 'tls.key', 'token'] } });
  });

  test('a rule for another host does not apply; a container without a matching label gets nothing', async () => {
    const out = await runOk(['run', '--rm', ...labels('plain'), image, 'env']);
    expect(out).not.toContain('DB_PASSWORD');
  });

  test('fail closed: a rule whose value the Defender does not have refuses the create, naming rule and secret', async () => {
    const r = await run(['run', '--rm', ...labels('missing'), image, 'true']);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain("secret rule 'missing' needs secret 'NOPE' (store 'local'), which this Defender does not have yet; the container was not created");
  });

  test('a create that sets io.drawbridge.* labels itself is refused', async () => {
    const r = await run(['run', '--rm', '--label', LABEL, '--label', 'io.drawbridge.secrets.rules=forged', image, 'true']);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain("labels starting with 'io.drawbridge.' are reserved for the Drawbridge Defender");
  });
});

describe('file secrets', () => {
  let name: string;

  test('/run/secrets/NAME with the rule mode: root only (0400) or all users (0444), read-only, in memory on the host', async () => {
    name = await startContainer('billing');
    expect(await runOk(['exec', name, 'cat', '/run/secrets/tls.key'])).toBe(TLS_KEY);
    expect((await runOk(['exec', name, 'stat', '-c', '%a %u', '/run/secrets/tls.key', '/run/secrets/token'])).split('\n').filter(Boolean)).toEqual(['400 0', '444 0']);
    const user = await run(['run', '--rm', ...labels('billing'), '--user', '1000', image, 'sh', '-c', 'cat /run/secrets/token; echo; cat /run/secrets/tls.key']);
    expect(user.stdout).toContain(TOKEN);
    expect(user.stdout).not.toContain(TLS_KEY);
    expect(user.stderr + user.stdout).toMatch(/Permission denied/);
    const write = await run(['exec', name, 'sh', '-c', 'echo x > /run/secrets/new']);
    expect(write.stderr).toMatch(/Read-only file system/);

    const dir = await hostDirOf(name);
    expect((await stat(secretsDir)).mode & 0o777).toBe(0o700);
    expect((await readdir(dir)).sort()).toEqual(['tls.key', 'token']);
    const mounts = await readFile('/proc/self/mountinfo', 'utf8');
    expect(mounts.split('\n').some((l) => l.split(' ')[4] === secretsDir && / - (tmpfs|ramfs) /.test(l)) || mounts.includes(' /dev/shm ')).toBe(true);
  });

  test('gone from the host when the container stops; back when it is started again through the Defender', async () => {
    const dir = await hostDirOf(name);
    await runOk(['stop', '-t', '1', name]);
    await pollUntil('the secret directory to be removed', () => !existsSync(dir), 15_000, 50);
    await runOk(['start', name]);
    expect(await runOk(['exec', name, 'cat', '/run/secrets/token'])).toBe(TOKEN);
    await runOk(['restart', '-t', '1', name]);
    expect(await runOk(['exec', name, 'cat', '/run/secrets/tls.key'])).toBe(TLS_KEY);
    await new Promise((r) => setTimeout(r, 500)); // the die event of the restart has been handled by now
    expect(existsSync(dir)).toBe(true);
  });

  test('a rotated value reaches the running container\'s file', async () => {
    await apiOk('PUT', '/api/v1/secret-stores/local/values', { path: 'shared/token', value: TOKEN_ROTATED });
    await pollUntil('the rotated token inside the container', async () => (await run(['exec', name, 'cat', '/run/secrets/token'])).stdout === TOKEN_ROTATED, 20_000, 100);
  });

  test('a request that mounts something at /run/secrets is refused', async () => {
    const r = await run(['run', '--rm', ...labels('billing'), '--tmpfs', '/run/secrets', image, 'true']);
    expect(r.stderr).toContain('but the request also mounts something at /run/secrets; mount it elsewhere');
  });
});

describe('leak paths', () => {
  test('commit, export and cp of a container carrying secrets are denied with a message; through a symlink too', async () => {
    const name = await startContainer('billing');
    const commit = await run(['commit', name, `dbsec-leak:${tag()}`]);
    expect(commit.stderr).toContain("The command 'container_commit' (docker commit) is denied: the container carries secrets injected by secret rule 'db-env', 'tls-root', 'token-all'");
    const exported = await run(['export', '-o', join(work, 'x.tar'), name]);
    expect(exported.stderr).toContain("The command 'container_export' (docker export) is denied");
    for (const path of ['/run/secrets/tls.key', '/etc/passwd']) {
      const cp = await run(['cp', `${name}:${path}`, '-']);
      expect(cp.code).not.toBe(0);
      expect(cp.stderr).toContain('(docker cp) is denied');
    }
    // Why a path check would not do: a symlink in the container makes any path the secrets directory.
    await runOk(['exec', name, 'ln', '-s', '/run/secrets', '/innocent']);
    const direct = await daemonRequest(inject('dockerHost'), 'GET', `/containers/${name}/archive?path=/innocent/tls.key`);
    expect(direct.status).toBe(200);
    expect(direct.body).toContain(TLS_KEY); // dockerd itself follows it
    expect((await run(['cp', `${name}:/innocent/tls.key`, '-'])).stderr).toContain('(docker cp) is denied');
    const shared = await run(['run', '--rm', '--label', LABEL, '--volumes-from', name, image, 'cat', '/run/secrets/tls.key']);
    expect(shared.stdout).not.toContain(TLS_KEY);
    expect(shared.stderr).toContain(`a container sharing the mounts or processes of '${name}' is denied`);
  });

  test('a rule that allows copy lets docker cp through; an unmarked container is not concerned', async () => {
    const copyable = await startContainer('copyable');
    expect((await run(['cp', `${copyable}:/run/secrets/ok`, '-'])).stdout).toContain(COPYABLE);
    const plain = await startContainer('plain');
    expect((await runOk(['cp', `${plain}:/etc/passwd`, '-']))).toContain('root:x:0:0');
  });
});

describe('the Console away', () => {
  test('injection goes on from the cached snapshot, also after a Defender restart', async () => {
    await consoleProc.stop();
    pastLogs.push(['console log (first run)', consoleProc.log()]);
    const cmd = ['run', '--rm', ...labels('billing'), image, 'sh', '-c', 'echo "[$DB_PASSWORD]"; cat /run/secrets/token'];
    expect(await runOk(cmd)).toBe(`[${DB_PASSWORD}]\n${TOKEN_ROTATED}`);
    pastLogs.push(['defender log (first run)', defender.log()]);
    defender = await defender.restart();
    expect(defender.log()).toMatch(/enforcing the cached policy/);
    expect(await runOk(cmd)).toBe(`[${DB_PASSWORD}]\n${TOKEN_ROTATED}`);
    consoleProc = await consoleProc.restart();
  });
});

describe('no value at rest or in logs', () => {
  test('a grep of the Defender and Console logs, audit, state and data directories finds no secret value', async () => {
    // Audit lines with secret names are accepted by the Console (the wire schema is strict), every one of them.
    const local = (await defender.audit()).length;
    await pollUntil('the whole audit at the Console', async () => ((await api('GET', '/api/v1/audit?host=dev-s&limit=500')).body.items as unknown[]).length >= local, 60_000, 250);
    // …and kept with the rule and secret names (the Console's audit query shows them).
    const creates = (await api('GET', '/api/v1/audit?host=dev-s&action=container_create&limit=500')).body.items as { secrets: { rules: string[]; names: string[] } | null }[];
    expect(creates.find((e) => e.secrets?.names.includes('DB_PASSWORD'))?.secrets).toMatchObject({ rules: expect.arrayContaining(['db-env']), names: expect.arrayContaining(['DB_PASSWORD']) });
    const texts: [string, Buffer][] = [
      ['defender log', Buffer.from(defender.log())],
      ['console log', Buffer.from(consoleProc.log())],
      ...pastLogs.map(([where, text]): [string, Buffer] => [where, Buffer.from(text)]),
    ];
    const walk = async (dir: string): Promise<void> => {
      for (const entry of await readdir(dir, { withFileTypes: true })) {
        const path = join(dir, entry.name);
        if (entry.isDirectory()) await walk(path);
        else if (entry.isFile()) texts.push([path, await readFile(path)]);
      }
    };
    await walk(defender.dir); // state (keys, policy cache, audit spool), local audit log
    await walk(consoleProc.dir); // database, master key
    expect(texts.length).toBeGreaterThan(5);
    for (const [where, bytes] of texts) {
      for (const value of ALL_VALUES) {
        expect(bytes.includes(value), `${value} found in ${where}`).toBe(false);
        expect(bytes.includes(Buffer.from(value, 'utf16le')), `${value} (UTF-16) found in ${where}`).toBe(false);
      }
    }
    const audit = (await defender.audit()).filter((e) => e.secrets);
    expect(audit.length).toBeGreaterThan(3);
  });
});
