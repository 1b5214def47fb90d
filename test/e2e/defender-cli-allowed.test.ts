// The real docker CLI through the real Defender, as a user the rules allow everything on dev-* (alice, OU=ops):
// every everyday command works as it does against dockerd directly — streams, stdin half-close, hijacked
// attach/exec, uploads and downloads of archives, the legacy builder, image save/load, events.
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { startCliDefender, type CliDefender } from '../support/cli-defender.js';
import { docker, dockerOk, startDocker } from '../support/docker-cli.js';
import { dockerCliEnv } from '../support/dockerd.js';
import type {} from '../support/global-setup.js'; // the ProvidedContext keys

const IMG = inject('testImage');
const direct = dockerCliEnv(inject('dockerHost'));
const id = randomBytes(4).toString('hex');
const name = (what: string): string => `dbcli-${id}-${what}`;

let cli: CliDefender;
let alice: NodeJS.ProcessEnv;
let work: string;
/** A running container (`sleep`) made directly on the daemon, for ps/inspect/exec/cp. */
const sleeper = name('sleeper');
const containers: string[] = [sleeper];
const volumes: string[] = [];
const images: string[] = [];

const lines = (s: string): string[] => s.split('\n').filter(Boolean);
/**
 * What `docker run` prints on stderr straight against dockerd: the daemon's own create warnings (with the host's
 * net.ipv4.ip_forward off: "IPv4 forwarding is disabled"). Through the Defender it must print exactly that.
 */
let runWarnings: string;

beforeAll(async () => {
  cli = await startCliDefender(inject('dockerHost'));
  alice = cli.env('alice');
  work = await mkdtemp(join(tmpdir(), 'drawbridge-cli-'));
  await dockerOk(['run', '-d', '--name', sleeper, IMG, 'sleep', '3600'], { env: direct });
  const plain = await docker(['run', '--rm', IMG, 'true'], { env: direct });
  expect(plain.code, plain.stderr).toBe(0);
  runWarnings = plain.stderr;
});

afterAll(async () => {
  await docker(['rm', '-f', ...containers], { env: direct });
  if (volumes.length) await docker(['volume', 'rm', '-f', ...volumes], { env: direct });
  if (images.length) await docker(['rmi', '-f', ...images], { env: direct });
  await cli?.stop();
  if (work) await rm(work, { recursive: true, force: true });
});

describe('allowed for alice (ops) on dev-a', () => {
  it('docker version shows the server section of the daemon behind the Defender', async () => {
    const server = (await dockerOk(['version', '--format', '{{.Server.Version}} {{.Server.APIVersion}}'], { env: direct })).trim();
    const [version, api] = server.split(' ');
    const r = await docker(['version'], { env: alice });
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^Server:/m);
    expect(r.stdout).toMatch(new RegExp(`^ Engine:\\n  Version: +${version!.replace(/[.+]/g, '\\$&')}\\n  API version: +${api!.replace('.', '\\.')} `, 'm'));
  });

  it('docker ps lists the running containers', async () => {
    const r = await docker(['ps', '--no-trunc', '--format', '{{.Names}}\t{{.Image}}\t{{.Command}}'], { env: alice });
    expect(r.code).toBe(0);
    expect(lines(r.stdout)).toContain(`${sleeper}\t${IMG}\t"sleep 3600"`);
  });

  it('docker run --rm prints exactly the output and removes the container', async () => {
    const c = name('hello');
    const { result: r, lines: audit } = await cli.auditDuring(() => docker(['run', '--rm', '--name', c, IMG, 'echo', 'hello'], { env: alice }));
    expect(r).toMatchObject({ code: 0, stdout: 'hello\n', stderr: runWarnings });
    // one line per request the CLI made (attach and wait run concurrently: compare sorted)
    expect(audit.map((l) => l.action).sort()).toEqual(['container_attach', 'container_create', 'container_start', 'container_wait', 'docker_ping']);
    for (const l of audit) expect(l).toMatchObject({ user: 'alice', groups: ['ops'], host: 'dev-a', decision: 'allow', rule: 'ops-on-dev', status: null });
    expect(lines(await dockerOk(['ps', '-a', '--format', '{{.Names}}'], { env: direct }))).not.toContain(c);
  });

  it('docker run -i passes piped stdin through and ends it (half-close)', async () => {
    const r = await docker(['run', '--rm', '-i', IMG, 'cat'], { env: alice, input: 'a\nb\n' });
    expect(r).toMatchObject({ code: 0, stdout: 'a\nb\n', stderr: runWarnings });
  });

  it('docker run -i passes binary stdin through unchanged', async () => {
    const data = randomBytes(256 * 1024);
    const r = await docker(['run', '--rm', '-i', IMG, 'wc', '-c'], { env: alice, input: data });
    expect(r).toMatchObject({ code: 0, stderr: runWarnings });
    expect(r.stdout.trim()).toBe(String(data.length));
  });

  it('docker exec -i pipes stdin into a running container', async () => {
    const r = await docker(['exec', '-i', sleeper, 'sh', '-c', 'cat; echo "exit:$?"'], { env: alice, input: 'x\ny\n' });
    expect(r).toMatchObject({ code: 0, stdout: 'x\ny\nexit:0\n', stderr: '' });
  });

  it('docker exec returns the command exit code', async () => {
    const r = await docker(['exec', sleeper, 'sh', '-c', 'echo out; echo err >&2; exit 3'], { env: alice });
    expect(r).toMatchObject({ code: 3, stdout: 'out\n', stderr: 'err\n' });
  });

  it('docker logs -f follows a ticking container until the CLI is stopped', async () => {
    const c = name('ticker');
    containers.push(c);
    await dockerOk(['run', '-d', '--name', c, IMG, 'sh', '-c', 'i=0; while :; do echo "tick $i"; i=$((i+1)); sleep 0.1; done'], { env: alice });
    const follow = startDocker(['logs', '-f', c], { env: alice });
    try {
      const seen = await follow.waitForStdout((out) => lines(out).length >= 5);
      expect(lines(seen).slice(0, 5)).toEqual(['tick 0', 'tick 1', 'tick 2', 'tick 3', 'tick 4']);
      // still following: more lines arrive after those
      await follow.waitForStdout((out) => lines(out).length >= 8);
    } finally {
      follow.child.kill('SIGINT');
    }
    const r = await follow.exited(10_000);
    expect(r.stderr).toBe('');
    const got = lines(r.stdout);
    expect(got).toEqual(got.map((_, i) => `tick ${i}`));
  });

  it('docker attach sends stdin to a running container and prints its output', async () => {
    const c = name('attach');
    containers.push(c);
    await dockerOk(['run', '-d', '-i', '--name', c, IMG, 'sh', '-c', 'read l; echo "got:$l"'], { env: direct });
    // stdin stays open: when the CLI ends it, dockerd ends the attach output at once (a non-StdinOnce container),
    // racing the container's answer; the CLI exits when the container does.
    const attach = startDocker(['attach', c], { env: alice });
    attach.child.stdin.write('hi\n');
    const r = await attach.exited(30_000);
    attach.child.stdin.end();
    expect(r).toMatchObject({ code: 0, stdout: 'got:hi\n', stderr: '' });
  });

  it('docker cp copies a directory (with a 5 MB random file) into a container and back, byte for byte', async () => {
    const src = join(work, 'cp-src');
    await mkdir(src);
    const big = randomBytes(5 * 1024 * 1024);
    const small = `small ${id}\n`;
    await writeFile(join(src, 'big.bin'), big);
    await writeFile(join(src, 'small.txt'), small);
    const up = await docker(['cp', src, `${sleeper}:/tmp/`], { env: alice });
    expect(up).toMatchObject({ code: 0, stderr: '' });
    expect(await dockerOk(['exec', sleeper, 'wc', '-c', '/tmp/cp-src/big.bin', '/tmp/cp-src/small.txt'], { env: direct })).toMatch(
      new RegExp(`^ *${big.length} /tmp/cp-src/big\\.bin\\n *${small.length} /tmp/cp-src/small\\.txt\\n`),
    );
    const back = join(work, 'cp-back');
    const down = await docker(['cp', `${sleeper}:/tmp/cp-src`, back], { env: alice });
    expect(down).toMatchObject({ code: 0, stderr: '' });
    expect((await readFile(join(back, 'big.bin'))).equals(big)).toBe(true);
    expect(await readFile(join(back, 'small.txt'), 'utf8')).toBe(small);
  });

  it('docker build (legacy builder) sends the context and the built image has the copied file', async () => {
    const ctx = join(work, 'build-ctx');
    await mkdir(ctx);
    const payload = `payload ${id}\n`;
    await writeFile(join(ctx, 'payload.txt'), payload);
    await writeFile(join(ctx, 'Dockerfile'), `FROM ${IMG}\nCOPY payload.txt /payload.txt\nCMD ["cat", "/payload.txt"]\n`);
    const tag = `${name('built')}:1`;
    images.push(tag);
    // No buildx here, and BuildKit's RUN would need networking the private daemon lacks: the legacy builder.
    const { result: r, lines: audit } = await cli.auditDuring(() => docker(['build', '-t', tag, ctx], { env: cli.env('alice', { DOCKER_BUILDKIT: '0' }) }));
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^Step 2\/3 : COPY payload\.txt \/payload\.txt$/m);
    expect(r.stdout).toContain(`Successfully tagged ${tag}\n`);
    // one POST /build carried the whole context: no BuildKit session or gRPC upgrade
    expect(audit.map((l) => l.action)).toEqual(['docker_ping', 'image_build']);
    expect(await dockerOk(['run', '--rm', tag], { env: alice })).toBe(payload);
  });

  it('docker save -o, rmi, load -i round-trips an image', async () => {
    const tag = `${name('saved')}:1`;
    images.push(tag);
    await dockerOk(['tag', IMG, tag], { env: alice });
    const imageId = (await dockerOk(['image', 'inspect', '--format', '{{.Id}}', tag], { env: alice })).trim();
    const tar = join(work, 'saved.tar');
    expect(await docker(['save', '-o', tar, tag], { env: alice })).toMatchObject({ code: 0, stdout: '', stderr: '' });
    expect((await stat(tar)).size).toBeGreaterThan(512 * 1024);
    expect(await docker(['rmi', tag], { env: alice })).toMatchObject({ code: 0, stdout: `Untagged: ${tag}\n` });
    expect((await docker(['image', 'inspect', tag], { env: direct })).code).not.toBe(0);
    expect(await docker(['load', '-i', tar], { env: alice })).toMatchObject({ code: 0, stdout: `Loaded image: ${tag}\n` });
    expect((await dockerOk(['image', 'inspect', '--format', '{{.Id}}', tag], { env: direct })).trim()).toBe(imageId);
  });

  it('docker events --since/--until shows an event this test caused', async () => {
    const v = name('events-vol');
    volumes.push(v);
    const since = Math.floor(Date.now() / 1000);
    await dockerOk(['volume', 'create', v], { env: alice });
    const until = Math.floor(Date.now() / 1000) + 1;
    const r = await docker(['events', '--since', String(since), '--until', String(until), '--format', '{{json .}}'], { env: alice, timeoutMs: 30_000 });
    expect(r).toMatchObject({ code: 0, stderr: '' });
    const events = lines(r.stdout).map((l) => JSON.parse(l) as { Type: string; Action: string; Actor: { ID: string } });
    expect(events).toContainEqual(expect.objectContaining({ Type: 'volume', Action: 'create', Actor: expect.objectContaining({ ID: v }) }));
  });

  it('docker inspect returns the container as JSON', async () => {
    const r = await docker(['inspect', sleeper], { env: alice });
    expect(r.code).toBe(0);
    const [c, ...rest] = JSON.parse(r.stdout) as Array<{ Name: string; Config: { Image: string; Cmd: string[] }; State: { Running: boolean } }>;
    expect(rest).toEqual([]);
    expect(c).toMatchObject({ Name: `/${sleeper}`, Config: { Image: IMG, Cmd: ['sleep', '3600'] }, State: { Running: true } });
  });

  it('docker rm -f removes a running container', async () => {
    const c = name('doomed');
    containers.push(c);
    await dockerOk(['run', '-d', '--name', c, IMG, 'sleep', '3600'], { env: direct });
    expect(await docker(['rm', '-f', c], { env: alice })).toMatchObject({ code: 0, stdout: `${c}\n`, stderr: '' });
    expect(lines(await dockerOk(['ps', '-a', '--format', '{{.Names}}'], { env: direct }))).not.toContain(c);
  });

  it('docker network ls lists the same networks as the daemon', async () => {
    const expected = lines(await dockerOk(['network', 'ls', '--format', '{{.ID}} {{.Name}}'], { env: direct }));
    const r = await docker(['network', 'ls', '--format', '{{.ID}} {{.Name}}'], { env: alice });
    expect(r.code).toBe(0);
    expect(lines(r.stdout).sort()).toEqual(expected.sort());
    expect(expected.map((l) => l.split(' ')[1])).toEqual(expect.arrayContaining(['host', 'none']));
  });

  it('docker volume create, then volume ls shows it', async () => {
    const v = name('vol');
    volumes.push(v);
    expect(await docker(['volume', 'create', v], { env: alice })).toMatchObject({ code: 0, stdout: `${v}\n`, stderr: '' });
    expect(lines(await dockerOk(['volume', 'ls', '--format', '{{.Name}}'], { env: alice }))).toContain(v);
    expect(lines(await dockerOk(['volume', 'ls', '--format', '{{.Name}}'], { env: direct }))).toContain(v);
  });
});
