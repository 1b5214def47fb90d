// `npm start` the way a new user runs it: the real npm script (bootstrap, Console, enrolled Defender) on this run's
// dockerd through DOCKER_HOST, then every command it prints under "In another terminal", typed into one shell with
// a pause between commands as a person would, each held to what its `# → …` comment promises; then Ctrl-C, sent to
// the whole process group as a terminal does, must stop every part.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, inject, it } from 'vitest';
import { freePort } from '../support/console-process.js';
import { REPO_ROOT } from '../support/defender-process.js';
import { docker } from '../support/docker-cli.js';
import { dockerCliEnv } from '../support/dockerd.js';
import { pollUntil } from '../support/poll.js';
import type {} from '../support/global-setup.js'; // the ProvidedContext keys

const STARTUP_MS = 150_000;

/** The environment of a shell with none of the docker CLI's variables set. */
function cleanEnv(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('DOCKER_') && !k.startsWith('DRAWBRIDGE_')));
  return { ...env, ...extra };
}

interface Printed {
  /** The shell line as printed, continuation lines joined. */
  readonly line: string;
  /** What its `# → …` comment promises, if it has one. */
  readonly promise?: string;
}

/** The commands of the printout between "In another terminal:" and "Press Ctrl-C": its lines indented by two spaces. */
function printedCommands(printout: string): Printed[] {
  const start = printout.indexOf('In another terminal:');
  const end = printout.indexOf('Press Ctrl-C to stop');
  expect(start, printout).toBeGreaterThan(0);
  expect(end, printout).toBeGreaterThan(start);
  return printout
    .slice(start, end)
    .replace(/\\\n\s*/g, ' ')
    .split('\n')
    .filter((l) => /^ {2}\S/.test(l) && !l.trimStart().startsWith('#'))
    .map((l) => {
      const promise = /\s#\s→\s(.*)$/.exec(l)?.[1];
      return { line: l.trim(), ...(promise ? { promise: promise.replace(/\s*…$/, '') } : {}) };
    });
}

interface Ran extends Printed {
  readonly code: number;
  readonly output: string;
}

/** Types the commands into one `sh`, one per second, and returns each one's exit code and output (stdout + stderr). */
function typeIntoShell(commands: readonly Printed[], cwd: string): Promise<Ran[]> {
  const script = ['exec 2>&1', ...commands.flatMap((c, i) => [`echo '@@@ ${i}'`, c.line, `echo "@@@ rc=$?"`, 'sleep 1'])].join('\n');
  return new Promise((resolve, reject) => {
    const sh = spawn('sh', ['-c', script], { cwd, env: cleanEnv(), stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    sh.stdout.setEncoding('utf8').on('data', (s: string) => (out += s));
    const timer = setTimeout(() => sh.kill('SIGKILL'), 180_000);
    sh.once('error', reject).once('close', () => {
      clearTimeout(timer);
      resolve(
        commands.map((c, i) => {
          const m = new RegExp(`@@@ ${i}\\n([\\s\\S]*?)@@@ rc=(\\d+)\\n`).exec(out);
          return { ...c, code: m ? Number(m[2]) : -1, output: m?.[1] ?? `(never ran; the shell printed:\n${out})` };
        }),
      );
    });
  });
}

function portClosed(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect(port, '127.0.0.1');
    s.once('connect', () => (s.destroy(), resolve(false))).once('error', () => resolve(true));
  });
}

/** PIDs of processes whose command line names `text` (the Console and Defender run in process groups of their own). */
function processesNaming(text: string): number[] {
  const { stdout } = spawnSync('pgrep', ['-f', '--', text], { encoding: 'utf8' });
  return stdout.split('\n').filter(Boolean).map(Number);
}

interface Quickstart {
  readonly child: ChildProcess;
  readonly dir: string;
  readonly ports: { defender: number; console: number };
  stdout(): string;
  stderr(): string;
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/** `npm start` in its own process group (a shell job: a Ctrl-C goes to all of it), on free ports and a scratch directory. */
async function npmStart(env: NodeJS.ProcessEnv): Promise<Quickstart> {
  const dir = await mkdtemp(join(tmpdir(), 'drawbridge-quickstart-'));
  const ports = { defender: await freePort(), console: await freePort() };
  const child = spawn('npm', ['start'], {
    cwd: REPO_ROOT,
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: cleanEnv({
      DRAWBRIDGE_PORT: String(ports.defender),
      DRAWBRIDGE_CONSOLE_PORT: String(ports.console),
      DRAWBRIDGE_QUICKSTART_DIR: join(dir, 'quickstart'),
      ...env,
    }),
  });
  let stdout = '';
  let stderr = '';
  child.stdout!.setEncoding('utf8').on('data', (s: string) => (stdout += s));
  child.stderr!.setEncoding('utf8').on('data', (s: string) => (stderr += s));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  return { child, dir, ports, stdout: () => stdout, stderr: () => stderr, exited };
}

/** Resolves once `npm start` has printed its instructions; rejects if it exits first. */
async function ready(q: Quickstart): Promise<void> {
  await Promise.race([
    pollUntil('npm start to print "Press Ctrl-C to stop"', () => q.stdout().includes('Press Ctrl-C to stop'), STARTUP_MS, 200),
    q.exited.then((r) => Promise.reject(new Error(`npm start exited (${JSON.stringify(r)}) before it was ready:\n${q.stdout()}\n${q.stderr()}`))),
  ]);
}

/** Kills whatever of a quickstart is left and removes its directory. */
async function cleanUp(q: Quickstart | undefined): Promise<void> {
  if (!q) return;
  for (const pid of processesNaming(q.dir)) process.kill(pid, 'SIGKILL');
  if (q.child.exitCode === null && q.child.signalCode === null) process.kill(-q.child.pid!, 'SIGKILL');
  await rm(q.dir, { recursive: true, force: true });
}

describe('npm start', () => {
  let q: Quickstart;
  let dir: string;
  let ports: Quickstart['ports'];
  const stdout = (): string => q.stdout();

  beforeAll(async () => {
    q = await npmStart({ DOCKER_HOST: inject('dockerHost') });
    ({ dir, ports } = q);
    await ready(q);
  }, STARTUP_MS + 10_000);

  afterAll(async () => {
    await cleanUp(q);
    await docker(['rm', '-f', 'demo', 'demo-secret'], { env: dockerCliEnv(inject('dockerHost')) });
  });

  it('uses the daemon DOCKER_HOST names and prints the addresses it was given', () => {
    expect(stdout()).toContain(`Using the Docker daemon at DOCKER_HOST=${inject('dockerHost')}.`);
    expect(stdout()).toContain(`Console   https://127.0.0.1:${ports.console}`);
    expect(stdout()).toContain(`export DOCKER_HOST=tcp://127.0.0.1:${ports.defender} DOCKER_TLS_VERIFY=1 DOCKER_CERT_PATH=${join(dir, 'quickstart', 'users', 'alice')}`);
  });

  it('every command it prints does what its comment says', async () => {
    const commands = printedCommands(stdout());
    // The printout's own walk-through, so a parser that found nothing cannot pass.
    expect(commands.map((c) => c.line)).toEqual(
      expect.arrayContaining([
        'docker ps',
        expect.stringMatching(/^docker exec demo id +# → denied by rule 'devs-no-exec'$/),
        expect.stringMatching(/^docker volume ls +# → denied by the default deny-all rule$/),
        expect.stringMatching(/^curl .* -X DELETE .*\/api\/v1\/rules\/devs-no-exec$/),
        'docker rm -f demo demo-secret',
      ]),
    );
    expect(commands.filter((c) => c.promise).length).toBeGreaterThanOrEqual(6);

    const ran = await typeIntoShell(commands, dir);
    for (const r of ran) {
      const what = `${r.line}\n--- printed ---\n${r.output}`;
      if (r.promise?.startsWith('denied')) {
        expect.soft(r.code, what).not.toBe(0);
        expect.soft(r.output, what).toContain('Error response from daemon: [Drawbridge] The command');
        expect.soft(r.output, what).toContain(r.promise.replace(/^denied:?\s*/, ''));
      } else {
        expect.soft(r.code, what).toBe(0);
        if (r.promise) expect.soft(r.output, what).toContain(r.promise);
      }
    }
    // What the comments leave unsaid: bruce's denials name him, the secret reaches both env and file, the rules export.
    const output = (re: RegExp): string => ran.find((r) => re.test(r.line))?.output ?? '';
    expect(output(/^docker volume ls/)).toContain(`The command 'volume_list' denied for user 'bruce' by the default deny-all rule`);
    expect(output(/^docker ps$/)).toMatch(/ demo\n/);
    const secret = /^env: (\S+) {2}file: (\S+)$/m.exec(output(/demo\.secrets=yes .* sh -c/));
    expect(secret, output(/demo\.secrets=yes .* sh -c/)).not.toBeNull();
    expect(secret![1]).toMatch(/^demo-/);
    expect(secret![2]).toBe(secret![1]);
    expect(output(/rules\/export/)).toMatch(/name: devs-no-exec/);
  }, 240_000);

  it('Ctrl-C stops the Defender, the Console and itself', async () => {
    expect(processesNaming(dir)).toHaveLength(2); // the Console (--data) and the Defender (--state)
    process.kill(-q.child.pid!, 'SIGINT');
    const { code, signal } = await q.exited;
    expect(processesNaming(dir)).toEqual([]);
    expect(stdout()).toContain('Ctrl-C: stopping');
    expect(stdout()).toMatch(/Stopped\.\nbootstrap: ✔ start/);
    expect(q.stderr()).toContain('drawbridge-defender: shutting down signal=SIGTERM');
    expect({ code, signal }).toEqual({ code: null, signal: 'SIGINT' }); // npm dies of the signal it got, as a shell expects
    expect(await portClosed(ports.defender)).toBe(true);
    expect(await portClosed(ports.console)).toBe(true);
  }, 60_000);
});

describe('npm start, when something goes wrong', () => {
  let q: Quickstart | undefined;
  afterEach(async () => {
    await cleanUp(q);
    q = undefined;
  });

  it.each([
    ['a daemon that does not answer', { DOCKER_HOST: 'unix:///nonexistent/docker.sock' }, /npm start failed: no Docker daemon answers at DOCKER_HOST=unix:\/\/\/nonexistent\/docker\.sock\. Start it, or unset DOCKER_HOST/],
    ['a TLS daemon', { DOCKER_HOST: 'tcp://127.0.0.1:2376', DOCKER_TLS_VERIFY: '1' }, /npm start failed: DOCKER_HOST=tcp:\/\/127\.0\.0\.1:2376 with TLS cannot be put behind the Defender: .*Unset DOCKER_HOST \(and DOCKER_TLS_VERIFY\)/],
    ['an ssh:// host', { DOCKER_HOST: 'ssh://me@build-box' }, /npm start failed: DOCKER_HOST=ssh:\/\/me@build-box cannot be put behind the Defender: it needs unix:\/\/\/path\/to\/docker\.sock or tcp:\/\/host:port, without TLS\./],
  ])('DOCKER_HOST naming %s: says so and exits 1', async (_, env, message) => {
    q = await npmStart(env);
    expect(await q.exited).toEqual({ code: 1, signal: null });
    expect(q.stderr()).toMatch(message);
    expect(processesNaming(q.dir)).toEqual([]);
  }, 60_000);

  it('Ctrl-C while it is still starting stops what has started, quietly', async () => {
    q = await npmStart({ DOCKER_HOST: inject('dockerHost') });
    await pollUntil('the Defender to be starting', () => q!.stdout().includes('Starting a Defender'), STARTUP_MS, 20);
    process.kill(-q.child.pid!, 'SIGINT');
    expect(await q.exited).toEqual({ code: null, signal: 'SIGINT' });
    expect(q.stdout()).toMatch(/Ctrl-C: stopping…\nStopped\.\n/);
    expect(q.stdout()).not.toContain('Drawbridge is running');
    expect(q.stderr()).not.toContain('npm start failed');
    expect(processesNaming(q.dir)).toEqual([]);
  }, STARTUP_MS + 30_000);

  it('a part that dies takes the rest down, and npm start says which and exits 1', async () => {
    q = await npmStart({ DOCKER_HOST: inject('dockerHost') });
    await ready(q);
    const [defender] = processesNaming(join(q.dir, 'quickstart', 'defender'));
    expect(defender).toBeGreaterThan(0);
    process.kill(defender!, 'SIGKILL');
    expect(await q.exited).toEqual({ code: 1, signal: null });
    expect(q.stderr()).toContain('npm start: the Defender stopped by itself (SIGKILL); its log is above. Stopping the rest.');
    expect(processesNaming(q.dir)).toEqual([]); // the Console too
    expect(await portClosed(q.ports.console)).toBe(true);
  }, STARTUP_MS + 30_000);
});
