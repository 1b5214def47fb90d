// The real docker CLI through the real Defender, as users the rules restrict: bruce (OU=devs) may only read on
// dev-*, everything else is denied by the rule `devs-read-only`; carol (no groups) matches no rule. Each denial
// must reach the user as the CLI's usual "Error response from daemon: …" line, change nothing on the daemon, and
// leave exactly one audit line per request the CLI made.
import { randomBytes } from 'node:crypto';
import { access, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { CLI_HOST_NAME, startCliDefender, type AuditLine, type CliDefender } from '../support/cli-defender.js';
import { docker, dockerOk, type DockerResult } from '../support/docker-cli.js';
import { dockerCliEnv } from '../support/dockerd.js';
import type {} from '../support/global-setup.js'; // the ProvidedContext keys

const IMG = inject('testImage');
const direct = dockerCliEnv(inject('dockerHost'));
const id = randomBytes(4).toString('hex');
const name = (what: string): string => `dbcli-${id}-${what}`;

let cli: CliDefender;
let bruce: NodeJS.ProcessEnv;
let carol: NodeJS.ProcessEnv;
let work: string;
/** The API version the CLI negotiates with the daemon (it prefixes every path but /_ping). */
let api: string;
const sleeper = name('sleeper');
/** An image tag that exists only inside `loadTar`. */
const unloaded = `${name('unloaded')}:1`;
let loadTar: string;

const lines = (s: string): string[] => s.split('\n').filter(Boolean);
const denial = (action: string, user: string, by: string): string =>
  `Error response from daemon: [Drawbridge] The command '${action}' denied for user '${user}' by ${by}`;
const byRule = (rule: string): string => `rule '${rule}'`;
const DEFAULT_DENY = 'the default deny-all rule';

/** The CLI failed with exactly this denial as one line of stderr, and printed nothing else on stdout. */
function expectDenied(r: DockerResult, line: string, code = 1, stdoutLine?: RegExp): void {
  expect(lines(r.stderr), r.stderr).toContain(line);
  if (stdoutLine) for (const l of r.stdout.split(/[\r\n]+/).filter(Boolean)) expect(l).toMatch(stdoutLine);
  else expect(r.stdout).toBe('');
  expect(r.code).toBe(code);
}

/** `[action, decision, rule]` per audit line, in order. */
const decisions = (audit: AuditLine[]): Array<[unknown, unknown, unknown]> => audit.map((l) => [l.action, l.decision, l.rule]);

const containerNames = async (): Promise<string[]> => lines(await dockerOk(['ps', '-a', '--format', '{{.Names}}'], { env: direct }));

beforeAll(async () => {
  cli = await startCliDefender(inject('dockerHost'));
  bruce = cli.env('bruce');
  carol = cli.env('carol');
  work = await mkdtemp(join(tmpdir(), 'drawbridge-cli-'));
  api = (await dockerOk(['version', '--format', '{{.Server.APIVersion}}'], { env: direct })).trim();
  await dockerOk(['run', '-d', '--name', sleeper, IMG, 'sleep', '3600'], { env: direct });
  await dockerOk(['exec', sleeper, 'sh', '-c', 'echo secret > /tmp/inside.txt'], { env: direct });
  await dockerOk(['tag', IMG, unloaded], { env: direct });
  loadTar = join(work, 'unloaded.tar');
  await dockerOk(['save', '-o', loadTar, unloaded], { env: direct });
  await dockerOk(['rmi', unloaded], { env: direct });
});

afterAll(async () => {
  await docker(['rm', '-f', sleeper, name('run')], { env: direct });
  await docker(['volume', 'rm', '-f', name('vol'), name('carol-vol')], { env: direct });
  await docker(['rmi', '-f', unloaded, `${name('built')}:1`], { env: direct });
  await cli?.stop();
  if (work) await rm(work, { recursive: true, force: true });
});

describe('denied for bruce (devs) by the rule devs-read-only', () => {
  it('docker run: container_create is denied and no container exists', async () => {
    const c = name('run');
    const { result: r, lines: audit } = await cli.auditDuring(() => docker(['run', '--rm', '--name', c, IMG, 'echo', 'hi'], { env: bruce }));
    expectDenied(r, `docker: ${denial('container_create', 'bruce', byRule('devs-read-only'))}`, 125);
    expect(decisions(audit)).toEqual([
      ['docker_ping', 'allow', 'devs-read'],
      ['container_create', 'deny', 'devs-read-only'],
    ]);
    expect(await containerNames()).not.toContain(c);
  });

  it('docker exec: container_exec_create is denied and no exec instance exists', async () => {
    const { result: r, lines: audit } = await cli.auditDuring(() => docker(['exec', sleeper, 'touch', '/tmp/exec-ran'], { env: bruce }));
    expectDenied(r, denial('container_exec_create', 'bruce', byRule('devs-read-only')));
    expect(decisions(audit)).toEqual([
      ['docker_ping', 'allow', 'devs-read'],
      ['container_inspect', 'allow', 'devs-read'], // the CLI checks the container is running first
      ['container_exec_create', 'deny', 'devs-read-only'],
    ]);
    expect((await dockerOk(['inspect', '--format', '{{json .ExecIDs}}', sleeper], { env: direct })).trim()).toBe('null');
    expect(await dockerOk(['exec', sleeper, 'sh', '-c', 'test -e /tmp/exec-ran && echo ran || echo absent'], { env: direct })).toBe('absent\n');
  });

  it('docker cp host → container: the stat (container_archive_head) is denied first, then the upload (container_extract)', async () => {
    const src = join(work, 'upload.bin');
    await writeFile(src, randomBytes(5 * 1024 * 1024)); // big enough that the CLI is still sending when the 403 comes
    const { result: r, lines: audit } = await cli.auditDuring(() => docker(['cp', src, `${sleeper}:/tmp/upload.bin`], { env: bruce }));
    // The CLI ignores a failed stat of the destination (it may not exist yet) and tries the upload anyway, so the
    // message the user sees names container_extract.
    expectDenied(r, denial('container_extract', 'bruce', byRule('devs-read-only')));
    expect(decisions(audit)).toEqual([
      ['docker_ping', 'allow', 'devs-read'],
      ['container_archive_head', 'deny', 'devs-read-only'],
      ['container_extract', 'deny', 'devs-read-only'],
    ]);
    expect(audit.map((l) => [l.method, l.path])).toEqual([
      ['HEAD', '/_ping'],
      ['HEAD', `/v${api}/containers/${sleeper}/archive`],
      ['PUT', `/v${api}/containers/${sleeper}/archive`],
    ]);
    expect(await dockerOk(['exec', sleeper, 'sh', '-c', 'test -e /tmp/upload.bin && echo present || echo absent'], { env: direct })).toBe('absent\n');
  });

  it('docker cp container → host: container_archive is denied and nothing is written', async () => {
    const dest = join(work, 'downloaded.txt');
    const { result: r, lines: audit } = await cli.auditDuring(() => docker(['cp', `${sleeper}:/tmp/inside.txt`, dest], { env: bruce }));
    expectDenied(r, denial('container_archive', 'bruce', byRule('devs-read-only')));
    expect(decisions(audit)).toEqual([
      ['docker_ping', 'allow', 'devs-read'],
      ['container_archive', 'deny', 'devs-read-only'],
    ]);
    await expect(access(dest)).rejects.toThrow(/ENOENT/);
  });

  it('docker build: image_build is denied and no image is tagged', async () => {
    const ctx = join(work, 'build-ctx');
    await mkdir(ctx);
    await writeFile(join(ctx, 'Dockerfile'), `FROM ${IMG}\nCOPY payload.bin /payload.bin\n`);
    await writeFile(join(ctx, 'payload.bin'), randomBytes(5 * 1024 * 1024));
    const tag = `${name('built')}:1`;
    const { result: r, lines: audit } = await cli.auditDuring(() => docker(['build', '-t', tag, ctx], { env: cli.env('bruce', { DOCKER_BUILDKIT: '0' }) }));
    // the legacy builder may print its upload progress before the answer comes
    expectDenied(r, denial('image_build', 'bruce', byRule('devs-read-only')), 1, /^Sending build context to Docker daemon +[\d.]+[kMG]?B$/);
    expect(decisions(audit)).toEqual([
      ['docker_ping', 'allow', 'devs-read'],
      ['image_build', 'deny', 'devs-read-only'],
    ]);
    expect((await docker(['image', 'inspect', tag], { env: direct })).code).not.toBe(0);
  });

  it('docker load: images_load is denied (the CLI reads the 403 while still uploading) and no image appears', async () => {
    // Repeated: a Defender that closes the connection on a client still sending the tar makes the CLI fail with
    // "write: broken pipe" instead of the denial, some of the time.
    for (let i = 0; i < 5; i++) {
      const { result: r, lines: audit } = await cli.auditDuring(() => docker(['load', '-i', loadTar], { env: bruce }));
      expectDenied(r, denial('images_load', 'bruce', byRule('devs-read-only')));
      expect(decisions(audit)).toEqual([
        ['docker_ping', 'allow', 'devs-read'],
        ['images_load', 'deny', 'devs-read-only'],
      ]);
    }
    expect((await docker(['image', 'inspect', unloaded], { env: direct })).code).not.toBe(0);
  });

  it('docker volume create: volume_create is denied and no volume exists; the audit lines carry every field', async () => {
    const v = name('vol');
    const { result: r, lines: audit } = await cli.auditDuring(() => docker(['volume', 'create', v], { env: bruce }));
    expectDenied(r, denial('volume_create', 'bruce', byRule('devs-read-only')));
    expect(audit).toHaveLength(2); // HEAD /_ping, POST /volumes/create
    const [ping, create] = audit;
    const common = { user: 'bruce', groups: ['devs'], host: CLI_HOST_NAME, client: '127.0.0.1' };
    expect(ping).toEqual({ ...common, time: expect.any(String), action: 'docker_ping', method: 'HEAD', path: '/_ping', decision: 'allow', rule: 'devs-read', status: null });
    expect(create).toEqual({ ...common, time: expect.any(String), action: 'volume_create', method: 'POST', path: `/v${api}/volumes/create`, decision: 'deny', rule: 'devs-read-only', status: 403 });
    expect(Date.parse(create!.time as string)).not.toBeNaN();
    expect(lines(await dockerOk(['volume', 'ls', '--format', '{{.Name}}'], { env: direct }))).not.toContain(v);
  });
});

describe('allowed reads for bruce by the rule devs-read', () => {
  it('docker version shows the server section', async () => {
    const { result: r, lines: audit } = await cli.auditDuring(() => docker(['version'], { env: bruce }));
    expect(r).toMatchObject({ code: 0, stderr: '' });
    expect(r.stdout).toMatch(/^Server:\n Engine:\n  Version: /m);
    expect(audit).toEqual([
      expect.objectContaining({ user: 'bruce', action: 'docker_ping', method: 'HEAD', path: '/_ping', decision: 'allow', rule: 'devs-read', status: null }),
      expect.objectContaining({ user: 'bruce', action: 'docker_version', method: 'GET', path: `/v${api}/version`, decision: 'allow', rule: 'devs-read', status: null }),
    ]);
  });

  it('docker ps lists the running containers', async () => {
    const r = await docker(['ps', '--format', '{{.Names}}'], { env: bruce });
    expect(r).toMatchObject({ code: 0, stderr: '' });
    expect(lines(r.stdout)).toContain(sleeper);
  });

  it('docker inspect returns the container as JSON', async () => {
    const r = await docker(['inspect', sleeper], { env: bruce });
    expect(r).toMatchObject({ code: 0, stderr: '' });
    const parsed = JSON.parse(r.stdout) as Array<{ Name: string; Config: { Image: string } }>;
    expect(parsed).toHaveLength(1);
    expect(parsed[0]).toMatchObject({ Name: `/${sleeper}`, Config: { Image: IMG } });
  });

  it('docker network ls lists the networks', async () => {
    const r = await docker(['network', 'ls', '--format', '{{.Name}}'], { env: bruce });
    expect(r).toMatchObject({ code: 0, stderr: '' });
    expect(lines(r.stdout).sort()).toEqual(lines(await dockerOk(['network', 'ls', '--format', '{{.Name}}'], { env: direct })).sort());
  });
});

describe('carol (no groups) meets the default deny-all rule', () => {
  it('docker ps is denied by the default rule, and so is the CLI\'s ping', async () => {
    const { result: r, lines: audit } = await cli.auditDuring(() => docker(['ps'], { env: carol }));
    expectDenied(r, denial('container_list', 'carol', DEFAULT_DENY));
    expect(audit.length).toBeGreaterThanOrEqual(2);
    for (const l of audit) {
      expect(l).toMatchObject({ user: 'carol', groups: [], host: CLI_HOST_NAME, decision: 'deny', rule: 'default-deny-all', status: 403 });
    }
    expect(audit.map((l) => l.action)).toEqual([...audit.slice(0, -1).map(() => 'docker_ping'), 'container_list']);
  });

  it('docker volume create is denied by the default rule and no volume exists', async () => {
    const v = name('carol-vol');
    const r = await docker(['volume', 'create', v], { env: carol });
    expectDenied(r, denial('volume_create', 'carol', DEFAULT_DENY));
    expect(lines(await dockerOk(['volume', 'ls', '--format', '{{.Name}}'], { env: direct }))).not.toContain(v);
  });
});
