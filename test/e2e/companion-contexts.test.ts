// Docker contexts written by the companion's context store, used by the REAL docker CLI through a real Defender
// in front of the private dockerd: `docker context ls/inspect/show`, `docker --context … ps`, plain `docker ps`
// after use(), the DOCKER_HOST / DOCKER_CONTEXT overrides, `drawbridge env` output and $DOCKER_CONFIG/{ca,cert,key}.pem
// for DOCKER_HOST users, and removal leaving the CLI's view (and the config dir) as it was.
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { DockerCertFiles, DockerContextStore, envCommand, type StoredContext } from '../../main/index.js';
import { startDefenderProcess, type DefenderProcess } from '../support/defender-process.js';
import { docker, dockerOk } from '../support/docker-cli.js';
import { dockerCliEnv } from '../support/dockerd.js';
import type {} from '../support/global-setup.js'; // the ProvidedContext keys

const run = async (file: string, args: string[], opts: { env: NodeJS.ProcessEnv }): Promise<string> => (await promisify(execFile)(file, args, { ...opts, timeout: 60_000 })).stdout;

const RULES = `rules:
  - name: devs-no-delete
    effect: deny
    groups: [devs]
    actions: [container_delete]
  - name: devs-on-dev
    effect: allow
    groups: [devs]
    hosts: ['dev-*']
`;
const NAME = 'drawbridge-dev-a';
const CONSOLE = 'https://console.example:8083';

const IMG = inject('testImage');
const direct = dockerCliEnv(inject('dockerHost'));
const sleeper = `dbctx-${randomBytes(4).toString('hex')}`;

let defender: DefenderProcess;
let configDir: string;
let store: DockerContextStore;
let context: StoredContext;
/** The docker CLI's environment: only DOCKER_CONFIG points it anywhere (no DOCKER_HOST, no DOCKER_CONTEXT). */
let env: NodeJS.ProcessEnv;
let lsBefore: string;
let configBefore: string;
let treeBefore: string[];

const lines = (s: string): string[] => s.split('\n').filter(Boolean);
/** Every path under the docker config dir. */
const tree = async (): Promise<string[]> => ((await readdir(configDir, { recursive: true })) as string[]).sort();
const contextLs = async (e = env): Promise<string> => dockerOk(['context', 'ls', '--format', '{{json .}}'], { env: e });

beforeAll(async () => {
  defender = await startDefenderProcess({ dockerHost: inject('dockerHost'), rules: RULES, hostName: 'dev-a' });
  configDir = await mkdtemp(join(tmpdir(), 'drawbridge-ctx-docker-config-'));
  env = { ...dockerCliEnv('unused'), DOCKER_CONFIG: configDir };
  delete env.DOCKER_HOST;
  store = new DockerContextStore(configDir);
  // The user already has a context of their own, current, and a config.json with keys the CLI does not even know.
  await dockerOk(['context', 'create', 'theirs', '--description', 'their own', '--docker', `host=${inject('dockerHost')}`], { env });
  await writeFile(join(configDir, 'config.json'), JSON.stringify({ auths: {}, credsStore: 'none-here', plugins: { x: { y: 'z' } }, 'x-other-tool': [1, { a: 'b' }] }, null, 2));
  await dockerOk(['context', 'use', 'theirs'], { env }); // the CLI's own write (drops x-other-tool: its Go struct lacks it)
  await writeFile(join(configDir, 'config.json'), JSON.stringify({ ...JSON.parse(await readFile(join(configDir, 'config.json'), 'utf8')), 'x-other-tool': [1, { a: 'b' }] }, null, '\t'));
  lsBefore = await contextLs();
  configBefore = await readFile(join(configDir, 'config.json'), 'utf8');
  treeBefore = await tree();
  await dockerOk(['run', '-d', '--name', sleeper, IMG, 'sleep', '3600'], { env: direct });

  const pem = await defender.ca.issueClientCert({ user: 'alice', groups: ['devs'] });
  context = await store.write({
    name: NAME,
    dockerHost: defender.host,
    tls: { ca: defender.ca.cert, cert: pem.cert, key: pem.key },
    drawbridge: { console: CONSOLE, host: 'dev-a' },
  });
});

afterAll(async () => {
  await docker(['rm', '-f', sleeper], { env: direct });
  await defender?.stop();
  if (configDir) await rm(configDir, { recursive: true, force: true });
});

describe('a context written by the companion, used by the real docker CLI', () => {
  it('docker context ls lists it next to the user\'s own, which stays current', async () => {
    const rows = lines(await contextLs()).map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(rows).toContainEqual({ Current: false, Description: `Drawbridge: dev-a via ${CONSOLE}`, DockerEndpoint: defender.host, Error: '', Name: NAME });
    expect(rows.find((r) => r.Name === 'theirs')).toMatchObject({ Current: true, Description: 'their own' });
    expect((await dockerOk(['context', 'show'], { env })).trim()).toBe('theirs');
  });

  it('docker context inspect shows the exact store paths, TLS files and our marker', async () => {
    const [inspected] = JSON.parse(await dockerOk(['context', 'inspect', NAME], { env })) as Record<string, any>[];
    expect(inspected).toEqual({
      Name: NAME,
      Metadata: { Description: `Drawbridge: dev-a via ${CONSOLE}`, Drawbridge: { console: CONSOLE, host: 'dev-a' } },
      Endpoints: { docker: { Host: defender.host, SkipTLSVerify: false } },
      TLSMaterial: { docker: ['ca.pem', 'cert.pem', 'key.pem'] },
      Storage: { MetadataPath: context.metadataPath, TLSPath: context.tlsPath },
    });
    expect(context.tlsPath).toBe(join(configDir, 'contexts/tls', context.tlsPath.split('/').pop()!));
  });

  it('docker --context drawbridge-dev-a ps goes through the Defender as alice (ECDSA P-256 cert accepted)', async () => {
    const before = (await defender.audit()).length;
    const r = await docker(['--context', NAME, 'ps', '--format', '{{.Names}}'], { env });
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(lines(r.stdout)).toContain(sleeper);
    const audit = (await defender.audit()).slice(before);
    expect(audit.map((l) => l.action)).toContain('container_list');
    for (const l of audit) expect(l).toMatchObject({ user: 'alice', groups: ['devs'], host: 'dev-a', decision: 'allow', rule: 'devs-on-dev' });
  });

  it('a denied command shows the rule, through the context', async () => {
    const r = await docker(['--context', NAME, 'rm', '-f', sleeper], { env });
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain("[Drawbridge] The command 'container_delete' denied for user 'alice' by rule 'devs-no-delete'");
  });

  it('the marker survives the CLI\'s own `docker context update`, so the context stays ours', async () => {
    await dockerOk(['context', 'update', NAME, '--description', 'renamed by hand'], { env });
    expect((await store.list()).map((c) => [c.name, c.description, c.drawbridge])).toEqual([[NAME, 'renamed by hand', { console: CONSOLE, host: 'dev-a' }]]);
  });
});

describe('use()', () => {
  it('makes plain `docker ps` go through the Defender, keeping config.json\'s other keys', async () => {
    const result = await store.use(NAME, env);
    expect(result).toEqual({ previous: 'theirs', effective: NAME, warnings: [] });
    expect((await dockerOk(['context', 'show'], { env })).trim()).toBe(NAME);
    const before = (await defender.audit()).length;
    expect(lines(await dockerOk(['ps', '--format', '{{.Names}}'], { env }))).toContain(sleeper);
    expect((await defender.audit()).slice(before).map((l) => l.action)).toContain('container_list');
    const config = JSON.parse(await readFile(join(configDir, 'config.json'), 'utf8')) as Record<string, unknown>;
    expect(config).toEqual({ ...JSON.parse(configBefore), currentContext: NAME });
  });

  it('DOCKER_HOST in the environment: warns with the fix, and the CLI indeed ignores the context', async () => {
    const withHost = { ...env, DOCKER_HOST: inject('dockerHost') };
    const result = await store.use(NAME, withHost);
    expect(result.effective).toBe('default');
    expect(result.warnings.map((w) => [w.variable, w.fix])).toEqual([['DOCKER_HOST', 'unset DOCKER_HOST']]);
    expect(result.warnings[0]!.message).toContain(`DOCKER_HOST=${inject('dockerHost')} overrides the current context`);
    expect((await dockerOk(['context', 'show'], { env: withHost })).trim()).toBe(result.effective);
    // The CLI's own `context use` agrees that DOCKER_HOST wins.
    expect((await docker(['context', 'use', NAME], { env: withHost })).stderr).toContain('Warning: DOCKER_HOST environment variable overrides the active context.');
    // After the fix (DOCKER_HOST unset) plain docker goes through the Defender again.
    expect((await dockerOk(['context', 'show'], { env })).trim()).toBe(NAME);
  });

  it('DOCKER_CONTEXT in the environment: warns with the fix; the CLI uses that context', async () => {
    const withContext = { ...env, DOCKER_CONTEXT: 'theirs' };
    const result = await store.use(NAME, withContext);
    expect(result).toMatchObject({ effective: 'theirs' });
    expect(result.warnings.map((w) => w.fix)).toEqual(['unset DOCKER_CONTEXT']);
    expect((await dockerOk(['context', 'show'], { env: withContext })).trim()).toBe('theirs');
  });
});

describe('without a context: DOCKER_HOST + DOCKER_TLS_VERIFY users', () => {
  it('`drawbridge env` output, evaluated by a real shell, points plain docker at the Defender', async () => {
    const line = await envCommand(store, 'dev-a');
    expect(line).toBe(`export DOCKER_HOST=${defender.host} DOCKER_TLS_VERIFY=1 DOCKER_CERT_PATH=${context.tlsEndpointPath}\n`);
    const before = (await defender.audit()).length;
    const r = await run('/bin/sh', ['-c', `${line}exec docker ps --format '{{.Names}}'`], { env: { ...env, DOCKER_CONTEXT: 'theirs' } });
    expect(lines(r)).toContain(sleeper);
    expect((await defender.audit()).slice(before).map((l) => l.user)).toContain('alice');
  });

  it('$DOCKER_CONFIG/{ca,cert,key}.pem: the CLI finds them without DOCKER_CERT_PATH; restore() puts the user\'s back', async () => {
    await writeFile(join(configDir, 'ca.pem'), 'the user\'s own CA\n', { mode: 0o644 });
    const stateDir = await mkdtemp(join(tmpdir(), 'drawbridge-ctx-state-'));
    const files = new DockerCertFiles({ configDir, stateDir });
    const treeWithCa = await tree();
    const pem = await defender.ca.issueClientCert({ user: 'alice', groups: ['devs'] });
    expect(await files.install({ ca: defender.ca.cert, cert: pem.cert, key: pem.key })).toEqual({ backedUp: ['ca.pem'] });
    const tlsEnv = { ...env, DOCKER_HOST: defender.host, DOCKER_TLS_VERIFY: '1' };
    expect(lines(await dockerOk(['ps', '--format', '{{.Names}}'], { env: tlsEnv }))).toContain(sleeper);
    expect(await files.restore()).toEqual({ restored: ['ca.pem'], removed: ['cert.pem', 'key.pem'], kept: [] });
    expect(await tree()).toEqual(treeWithCa);
    expect(await readFile(join(configDir, 'ca.pem'), 'utf8')).toBe('the user\'s own CA\n');
    expect((await stat(join(configDir, 'ca.pem'))).mode & 0o777).toBe(0o644);
    await rm(join(configDir, 'ca.pem'));
    await rm(stateDir, { recursive: true, force: true });
  });
});

describe('removal', () => {
  it('switching back and removing leaves `docker context ls` and config.json as they were', async () => {
    await store.use('theirs', env);
    expect(await store.remove(NAME)).toEqual({ removed: true, clearedCurrentContext: false });
    expect(await contextLs()).toBe(lsBefore);
    expect(JSON.parse(await readFile(join(configDir, 'config.json'), 'utf8'))).toEqual(JSON.parse(configBefore));
    expect(await tree()).toEqual(treeBefore); // no empty contexts/tls left behind either
    expect((await docker(['--context', NAME, 'ps'], { env })).stderr).toContain('context "drawbridge-dev-a": context not found');
    expect(await store.list()).toEqual([]);
  });
});
