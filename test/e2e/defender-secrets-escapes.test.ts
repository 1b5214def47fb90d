// Ways to the secrets that need neither a leak route nor a bind of the secrets directory, each reproduced against
// this stage before it was closed (found by reviewing the Defender as an attacker whom the rules allow everything):
// - `--ipc host`: dockerd mounts the host's /dev/shm in the container, recursively, and the secrets base is there;
// - a local volume of type overlay whose mount data (`o=lowerdir=<the base>:…`) names the base as a layer;
// - an archive upload (`docker cp` into a container) that replaces a script the container runs: it then runs with
//   the container's env and /run/secrets, as `docker exec` would, without the exec action.
// - host settings (Binds, Mounts, PidMode, VolumesFrom) at the top level of a create body without HostConfig:
//   dockerd before 27 reads them there (moby's ContainerConfigWrapper embeds HostConfig), the checks read only
//   HostConfig; the docker CLI never sends this form, any raw API client can.
// - another local user (`nobody`) at the secrets base's predictable name in /dev/shm (sticky, open to all): a link
//   to a directory of theirs, planted before the Defender's first file secret or after it released the base, took
//   the tmpfs mount and then the next container's secret files; now the Defender refuses the name until an admin
//   removes what is there, and nothing lands in their directory.
// - `--network container:` of a secret-carrying container: its network namespace, where NET_RAW (a default
//   capability) sniffs the credentials it sends and its localhost-only endpoints answer.
// Each attack is shown working against a container without secrets, so the refusal is what stops it. Behind the
// create checks, a start checks again what dockerd stored (a container made past the Defender, or any body that
// dockerd reads otherwise than the checks).
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { lstatSync, readdirSync, readFileSync } from 'node:fs';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { dockerEnvFor } from '../support/console-user-cert.js';
import { daemonRequest } from '../support/daemon-request.js';
import { startDefenderProcess, type DefenderProcess } from '../support/defender-process.js';
import { docker } from '../support/docker-cli.js';
import { dockerAs } from '../support/e2e-drivers.js';
import { pollUntil } from '../support/poll.js';
import { secretsUnderAttack, tag } from '../support/secrets-under-attack.js';
import { tarOf } from '../support/tar.js';
import { RawTlsClient, rawRequest } from '../support/tls-client.js';

const s = secretsUnderAttack('defender-secrets-escapes', 'dev-esc');
const { label, DB_PASSWORD, TOKEN, dockerHost, run, runOk, startContainer, inspectDirect } = s;
const BASE_MOUNT = "which holds or contains the containers' secrets";

describe("the host's IPC namespace (its /dev/shm holds the secrets base)", () => {
  test('--ipc host is refused while the base is under /dev/shm', async () => {
    await startContainer('billing');
    const r = await run(['run', '--rm', '--label', label, '--ipc', 'host', s.image, 'sh', '-c', `cat ${s.secretsDir}/*/token; true`]);
    expect(r.stdout).not.toContain(TOKEN);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain(`'--ipc host' is denied on this Defender: the host's /dev/shm would be mounted in the container, and it holds every container's secret files (${s.secretsDir})`);
  });

  test('a container with the host IPC namespace made past the Defender cannot be started through it, nor shared with --ipc container:', async () => {
    await startContainer('billing');
    const name = `escapes-hostipc-${tag()}`;
    const config = { Image: s.image, Cmd: ['sleep', '600'], Labels: { 'drawbridge.test': 'defender-secrets-escapes' }, HostConfig: { IpcMode: 'host' } };
    const created = await daemonRequest(dockerHost(), 'POST', `/containers/create?name=${name}`, config);
    expect(created.status, created.body).toBe(201);
    const start = await run(['start', name]);
    expect(start.code).not.toBe(0);
    expect(start.stderr).toContain("'--ipc host' is denied on this Defender");
    expect((await inspectDirect(name)).State.Running).toBe(false);
    expect((await daemonRequest(dockerHost(), 'POST', `/containers/${name}/start`)).status).toBe(204); // past the Defender
    const r = await run(['run', '--rm', '--label', label, '--ipc', `container:${name}`, s.image, 'sh', '-c', `cat ${s.secretsDir}/*/token; true`]);
    expect(r.stdout).not.toContain(TOKEN);
    expect(r.stderr).toContain(`'--ipc container:${name}' ('${name}' has the host's IPC namespace) is denied on this Defender`);
  });

  test("--ipc container: of a secret-carrying container is a copy path (its /dev/shm and shared memory), like --pid container:", async () => {
    const secret = await startContainer('billing', ['--ipc', 'shareable']);
    const r = await run(['run', '--rm', '--label', label, '--ipc', `container:${secret}`, s.image, 'true']);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain(`a container sharing the mounts or processes of '${secret}' is denied`);
  });

  test('--ipc container: of a private namespace works, pinned to the id that was checked', async () => {
    const owner = await startContainer('plain', ['--ipc', 'shareable']);
    const sharer = await startContainer('plain', ['--ipc', `container:${owner}`]);
    expect((await inspectDirect(sharer)).HostConfig.IpcMode).toBe(`container:${(await inspectDirect(owner)).Id}`);
  });
});

describe("the network namespace of a secret-carrying container (--network container:)", () => {
  const netns = ['readlink', '/proc/self/ns/net'];

  test('is a copy path, like --pid and --ipc container:', async () => {
    const secret = await startContainer('billing');
    const r = await run(['run', '--rm', '--label', label, '--network', `container:${secret}`, s.image, ...netns]);
    expect(r.code).not.toBe(0);
    expect(r.stdout).toBe('');
    expect(r.stderr).toContain(`a container sharing the mounts or processes of '${secret}' is denied: '${secret}' carries secrets injected by secret rule 'db-env', 'token-all', which does not allow 'copy'`);
  });

  test("of a container without secrets it works: the same namespace, pinned to the id that was checked", async () => {
    const owner = await startContainer('plain');
    const sharer = await startContainer('plain', ['--network', `container:${owner}`], ['sh', '-c', 'readlink /proc/self/ns/net; sleep 600']);
    await pollUntil('the sharer to print its namespace', async () => (await runOk(['logs', sharer])) !== '', 10_000, 100);
    expect(await runOk(['logs', sharer])).toBe(await runOk(['exec', owner, ...netns]));
    expect((await inspectDirect(sharer)).HostConfig.NetworkMode).toBe(`container:${(await inspectDirect(owner)).Id}`);
  });

  test("docker build --network container: (the classic builder's RUN containers join it) is decided the same way", async () => {
    const ctx = join(s.work, `build-netns-${tag()}`);
    await mkdir(ctx);
    await writeFile(join(ctx, 'Dockerfile'), `FROM ${s.image}\nRUN echo "netns $(readlink /proc/self/ns/net)"\n`);
    const env = { ...dockerEnvFor(s.defender.host, s.eveDir, join(s.work, 'docker-config')), DOCKER_BUILDKIT: '0' };
    const build = (of: string) => docker(['build', '--no-cache', '--rm', '--network', `container:${of}`, '--label', label, ctx], { env });
    const plain = await startContainer('plain');
    const works = await build(plain);
    expect(works.code, works.stderr).toBe(0);
    expect(works.stdout).toContain(`netns ${(await runOk(['exec', plain, ...netns])).trim()}`); // the attack, on a plain container
    const secret = await startContainer('billing');
    const refused = await build(secret);
    expect(refused.code).not.toBe(0);
    expect(refused.stdout).not.toContain('netns');
    expect(refused.stderr).toContain(`a container sharing the mounts or processes of '${secret}' is denied`);
  });
});

describe("overlay layers in a local volume's mount data", () => {
  test('lowerdir=<the base> is refused in docker volume create and in an inline --mount; overlays of other host paths work', async () => {
    await startContainer('billing');
    const [lower, empty] = [join(s.work, 'lower'), join(s.work, 'empty')];
    await mkdir(lower);
    await mkdir(empty);
    await writeFile(join(lower, 'hello'), 'from the lower layer');
    const overlay = (layers: string): string[] => ['-o', 'type=overlay', '-o', 'device=overlay', '-o', `o=lowerdir=${layers}`];
    const created = await run(['volume', 'create', '--label', label, ...overlay(`${s.secretsDir}:${empty}`), `escapes-ovl-${tag()}`]);
    expect(created.code).not.toBe(0);
    expect(created.stderr).toContain(`the request mounts the host path ${s.secretsDir}, ${BASE_MOUNT}`);
    const inlineOpts = (layers: string): string => `type=volume,dst=/y,volume-driver=local,volume-opt=type=overlay,volume-opt=device=overlay,volume-opt=o=lowerdir=${layers}`;
    const inline = await run(['run', '--rm', '--label', label, '--mount', inlineOpts(`${s.secretsDir}:${empty}`), s.image, 'sh', '-c', 'cat /y/*/token']);
    expect(inline.stdout).not.toContain(TOKEN);
    expect(inline.stderr).toContain(`the request mounts the host path ${s.secretsDir}, ${BASE_MOUNT}`);
    // The same mounts of ordinary directories are not refused: the overlay itself is what dockerd makes of them.
    const volume = (await runOk(['volume', 'create', '--label', label, ...overlay(`${lower}:${empty}`), `escapes-ovl-${tag()}`])).trim();
    expect(await runOk(['run', '--rm', '--label', label, '-v', `${volume}:/x`, s.image, 'cat', '/x/hello'])).toBe('from the lower layer');
    expect(await runOk(['run', '--rm', '--label', label, '--mount', inlineOpts(`${lower}:${empty}`), s.image, 'cat', '/y/hello'])).toBe('from the lower layer');
  });
});

describe('an archive upload into a container (docker cp into it)', () => {
  // The container runs /tmp/run.sh when it appears: what a service's entrypoint or a restart would do with a
  // replaced script or binary.
  const RUNS_PLANTED = ['sh', '-c', 'while ! [ -f /tmp/run.sh ]; do sleep 0.1; done; sh /tmp/run.sh; sleep 600'];
  const plant = tarOf('tmp/run.sh', Buffer.from('echo planted; env; cat /run/secrets/token 2>/dev/null; echo\n'));

  async function upload(container: string): Promise<{ status: number; text: string }> {
    const client = await RawTlsClient.connect(s.defender.port, s.eveDir);
    try {
      await client.write(rawRequest('PUT', `/v1.41/containers/${container}/archive?path=/`, { 'Content-Type': 'application/x-tar', 'Content-Length': plant.length }, plant));
      const res = await client.readResponse();
      return { status: res.status, text: res.text() };
    } finally {
      client.destroy();
    }
  }

  test('into a secret-carrying container it is refused (copy path), so nothing it planted runs with the secrets', async () => {
    const secret = await startContainer('billing', [], RUNS_PLANTED);
    const r = await upload(secret);
    expect(r.status, r.text).toBe(403);
    expect(r.text).toContain("The command 'container_extract' (docker cp into it) is denied: the container carries secrets injected by secret rule 'db-env', 'token-all'");
    await writeFile(join(s.work, 'cp-me'), 'echo planted by docker cp\n');
    const cp = await run(['cp', join(s.work, 'cp-me'), `${secret}:/tmp/run.sh`]);
    expect(cp.code).not.toBe(0); // the CLI's stat (HEAD) is refused first, the upload after it
    await new Promise((resolve) => setTimeout(resolve, 500));
    const logs = await runOk(['logs', secret]);
    expect(logs).not.toContain(DB_PASSWORD);
    expect(logs).not.toContain('planted');
  });

  test('into a container without secrets it works (and what it planted runs)', async () => {
    const plain = await startContainer('plain', [], RUNS_PLANTED);
    const r = await upload(plain);
    expect(r.status, r.text).toBe(200);
    await pollUntil('the planted script to run', async () => (await runOk(['logs', plain])).includes('planted'), 10_000, 100);
  });
});

describe('host settings at the top level of a create body (dockerd reads them when HostConfig is missing or null)', () => {
  /** A raw create as eve: Image, Cmd and labels, plus `fields` at the top level (no HostConfig unless given). */
  async function createRaw(app: string, cmd: string[], fields: Record<string, unknown>): Promise<{ status: number; text: string }> {
    const body = { Image: s.image, Cmd: cmd, Labels: { [label.split('=')[0]!]: label.split('=')[1]!, app }, ...fields };
    return s.rawOnce('POST', `/v1.41/containers/create?name=escapes-top-${tag()}`, {}, JSON.stringify(body));
  }
  const idOf = (r: { text: string }): string => (JSON.parse(r.text) as { Id: string }).Id;
  async function startAndLog(id: string): Promise<string> {
    const started = await s.rawOnce('POST', `/v1.41/containers/${id}/start`);
    expect(started.status, started.text).toBe(204);
    await pollUntil('the container to exit', async () => (await inspectDirect(id)).State.Running === false, 10_000, 100);
    return runOk(['logs', id]);
  }

  test('a top-level bind works for an ordinary host path, so dockerd does read it', async () => {
    const dir = join(s.work, 'top-level-bind');
    await mkdir(dir);
    await writeFile(join(dir, 'hello'), 'read through a top-level bind');
    const r = await createRaw('plain', ['cat', '/x/hello'], { Binds: [`${dir}:/x:ro`] });
    expect(r.status, r.text).toBe(201);
    expect(await startAndLog(idOf(r))).toBe('read through a top-level bind');
  });

  test.each([
    ['Binds of the base', { Binds: [`<base>:/x:ro`] }, BASE_MOUNT],
    ['Binds of the base, HostConfig null', { Binds: [`<base>:/x:ro`], HostConfig: null }, BASE_MOUNT],
    ['a bind of /proc', { binds: ['/proc:/hp:ro'] }, BASE_MOUNT],
    ['Mounts of the base', { Mounts: [{ Type: 'bind', Source: '<base>', Target: '/x' }] }, BASE_MOUNT],
    ['PidMode host', { PidMode: 'host' }, "'--pid host' is denied on this Defender"],
    ['IpcMode host', { IpcMode: 'host' }, "'--ipc host' is denied on this Defender"],
  ])('%s is refused', async (_, fields, message) => {
    await startContainer('billing');
    const withBase = JSON.parse(JSON.stringify(fields).replaceAll('<base>', s.secretsDir)) as Record<string, unknown>;
    const r = await createRaw('plain', ['sh', '-c', `cat /x/*/token /hp/*/environ; true`], withBase);
    expect(r.status, r.text).toBe(403);
    expect(r.text).toContain(message);
  });

  test("VolumesFrom or NetworkMode container: of a secret-carrying container is refused (copy path); of a plain one it works, pinned", async () => {
    const secret = await startContainer('billing');
    for (const fields of [{ VolumesFrom: [secret] }, { NetworkMode: `container:${secret}` }]) {
      const refused = await createRaw('plain', ['cat', '/run/secrets/token'], fields);
      expect(refused.status, refused.text).toBe(403);
      expect(refused.text).toContain(`a container sharing the mounts or processes of '${secret}' is denied`);
    }
    const plain = await startContainer('plain');
    const shared = await createRaw('plain', ['true'], { VolumesFrom: [plain] });
    expect(shared.status, shared.text).toBe(201);
    expect((await inspectDirect(idOf(shared))).HostConfig.VolumesFrom).toEqual([(await inspectDirect(plain)).Id]);
  });

  test('a secret-carrying container given its host settings at the top level gets them and its secrets', async () => {
    const dir = join(s.work, 'top-level-data');
    await mkdir(dir);
    await writeFile(join(dir, 'hello'), 'data');
    const r = await createRaw('billing', ['sh', '-c', 'cat /data/hello; echo; cat /run/secrets/token'], { Binds: [`${dir}:/data:ro`] });
    expect(r.status, r.text).toBe(201);
    expect(await startAndLog(idOf(r))).toBe(`data\n${TOKEN}`);
    const hostConfig = (await inspectDirect(idOf(r))).HostConfig;
    expect(hostConfig.Binds).toEqual([`${dir}:/data:ro`]);
    expect(hostConfig.Mounts.map((m: { Target: string }) => m.Target)).toEqual(['/run/secrets']);
  });
});

describe('a start checks what dockerd stored for the container', () => {
  /** Created straight on dockerd (past the Defender): the Defender sees it first at its start. */
  async function createPast(hostConfig: Record<string, unknown>): Promise<string> {
    const name = `escapes-past-${tag()}`;
    const config = { Image: s.image, Cmd: ['sh', '-c', `cat ${'/x/*/token'} /hp/1/environ; sleep 600`], Labels: { 'drawbridge.test': 'defender-secrets-escapes' }, HostConfig: hostConfig };
    const created = await daemonRequest(dockerHost(), 'POST', `/containers/create?name=${name}`, config);
    expect(created.status, created.body).toBe(201);
    return name;
  }

  test.each<[string, () => Record<string, unknown>, () => string]>([
    ['a bind of the secrets base', () => ({ Binds: [`${s.secretsDir}:/x:ro`] }), () => `this container mounts the host path ${s.secretsDir}, which holds or contains the containers' secrets (${s.secretsDir}); it cannot be started through the Defender`],
    ['a bind of one secret directory', () => ({ Binds: [`${s.secretsDir}/${'0'.repeat(32)}:/x:ro`] }), () => `this container mounts the host path ${s.secretsDir}/${'0'.repeat(32)}, which holds`],
    ['a bind of /proc', () => ({ Binds: ['/proc:/hp:ro'] }), () => "this container mounts the host path /proc, which holds or contains the containers' secrets (/proc)"],
    ['--pid host', () => ({ PidMode: 'host' }), () => "'--pid host' is denied on this Defender"],
  ])('one made past the Defender with %s cannot be started through it', async (_, hostConfig, message) => {
    await startContainer('billing');
    const name = await createPast(hostConfig());
    const start = await run(['start', name]);
    expect(start.code).not.toBe(0);
    expect(start.stderr).toContain(message());
    expect((await inspectDirect(name)).State.Running).toBe(false);
  });

  test("one made past the Defender sharing a secret-carrying container's processes, IPC or network cannot be started through it", async () => {
    const secret = (await inspectDirect(await startContainer('billing', ['--ipc', 'shareable']))).Id as string;
    for (const hostConfig of [{ PidMode: `container:${secret}` }, { IpcMode: `container:${secret}` }, { NetworkMode: `container:${secret}` }]) {
      const name = await createPast(hostConfig);
      const start = await run(['start', name]);
      expect(start.code).not.toBe(0);
      expect(start.stderr).toContain(`a container sharing the mounts or processes of '${secret}' is denied`);
      expect((await inspectDirect(name)).State.Running).toBe(false);
    }
  });

  test("one sharing a secret-carrying container's mounts (--volumes-from) or network starts when that one's rules allow copy", async () => {
    await s.apiOk('PUT', '/api/v1/secret-stores/local/values', { path: 'copy/ok', value: 'copy-is-fine' });
    await s.apiOk('POST', '/api/v1/secret-rules', { name: 'copyable', mode: 'file', secrets: [{ name: 'ok', store: 'local', path: 'copy/ok' }], scope: { labels: ['app=copyable'] }, allow: ['copy'] }, 201);
    await pollUntil('the copyable rule to reach the Defender', async () => (await run(['run', '--rm', ...s.labels('copyable'), s.image, 'cat', '/run/secrets/ok'])).stdout === 'copy-is-fine', 30_000, 200);
    const copyable = await startContainer('copyable');
    expect(await runOk(['run', '--rm', '--label', label, '--volumes-from', copyable, s.image, 'cat', '/run/secrets/ok'])).toBe('copy-is-fine');
    const netns = await runOk(['exec', copyable, 'readlink', '/proc/self/ns/net']);
    expect(await runOk(['run', '--rm', '--label', label, '--network', `container:${copyable}`, s.image, 'readlink', '/proc/self/ns/net'])).toBe(netns);
  });
});

describe('another local user at the secrets base name (/dev/shm is open to every user)', () => {
  const NOBODY = 65534;
  const asNobody = (cmd: string, ...args: string[]): void => void execFileSync(cmd, args, { uid: NOBODY, gid: NOBODY, stdio: 'ignore' });
  const mountedAt = (path: string): boolean => readFileSync('/proc/self/mountinfo', 'utf8').split('\n').some((l) => l.split(' ')[4] === path);

  test.skipIf(process.getuid?.() !== 0)(
    "nobody's link at the default base name is refused, before the first file secret and after the base was released; the secret never lands in their directory",
    async () => {
      // What the reviewer did: predict the default base from the state path, link it to a 0777 directory of nobody's.
      const stateDir = join(s.work, `second-defender-${tag()}`);
      const base = `/dev/shm/drawbridge-secrets-${createHash('sha256').update(stateDir).digest('hex').slice(0, 12)}`;
      const theirs = `/dev/shm/defender-secrets-escapes-nobody-${tag()}`;
      asNobody('mkdir', '-m', '0777', theirs);
      asNobody('ln', '-s', theirs, base);
      const joinToken = (await s.apiOk<{ token: string }>('POST', '/api/v1/defenders/join-tokens', {}, 201)).token;
      const consoleOpts = { url: s.consoleProc.url, ca: s.consoleProc.caPem };
      const start = (token?: string): Promise<DefenderProcess> =>
        startDefenderProcess({ dockerHost: dockerHost(), hostName: 'dev-esc-b', stateDir, console: token ? { ...consoleOpts, joinToken: token } : consoleOpts });
      let defender = await start(joinToken);
      const cli = dockerAs(() => dockerEnvFor(defender.host, s.eveDir, join(s.work, `docker-config-${tag()}`)));
      const readToken = (): ReturnType<typeof cli.run> => cli.run(['run', '--rm', ...s.labels('billing'), s.image, 'cat', '/run/secrets/token']);
      const refused = async (): Promise<void> => {
        // Refused as soon as this Defender has the rules (before, the container runs without secrets).
        const r = await pollUntil('a create with a file secret to be refused', async () => {
          const attempt = await readToken();
          return attempt.stderr.includes('cannot write the secret files for this container') && attempt;
        }, 30_000, 200);
        expect(r.stdout).not.toContain(TOKEN);
        expect(defender.log()).toContain(`the secrets directory ${base} is a symbolic link`);
        expect(defender.log()).toContain(`Remove it (as root: rm -r ${base})`);
        expect(readdirSync(theirs, { recursive: true })).toEqual([]);
        expect(mountedAt(theirs)).toBe(false);
        expect(lstatSync(base).isSymbolicLink()).toBe(true);
      };
      try {
        await refused();
        // The admin removes the link: the Defender makes the base itself, and file secrets work.
        await rm(base);
        expect((await readToken()).stdout).toBe(TOKEN);
        const made = lstatSync(base);
        expect([made.isDirectory(), made.uid, made.mode & 0o777, mountedAt(base)]).toEqual([true, 0, 0o700, true]);
        // No container has a directory left: the stop releases (unmounts and removes) the base; the name is free.
        await pollUntil('the --rm containers\' directories to be removed', () => readdirSync(base).length === 0, 10_000, 50);
        await defender.stop();
        expect(() => lstatSync(base)).toThrow(/ENOENT/);
        asNobody('ln', '-s', theirs, base);
        defender = await start();
        await refused();
      } finally {
        await defender.stop();
        if (mountedAt(theirs)) execFileSync('umount', [theirs]);
        if (mountedAt(base)) execFileSync('umount', [base]);
        await rm(base, { recursive: true, force: true });
        await rm(theirs, { recursive: true, force: true });
      }
    },
    120_000,
  );
});
