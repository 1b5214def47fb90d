// Secrets under attack, end to end: a real Console (built-in store, secret rules) and a real Defender enrolled with
// it in front of the private dockerd, attacked through the real docker CLI and raw TLS requests by a user whom
// the access rules allow everything. Each test is one attack that worked before it was closed:
// - a rename between the Defender's container lookup and dockerd's own (the request is pinned to the full id);
// - dockerd's restart policy finding no secret directory (kept while dockerd will restart the container);
// - binds or volumes of the Defender's secrets directory (as written, via a host symlink, inline volume options,
//   `docker volume create`);
// - `--link` to a secret-carrying container (its env is copied into the linking container on the default bridge);
// - an image carrying Drawbridge's marker labels, whose containers made the Defender overwrite or remove another
//   container's secret directory;
// - a swarm service whose container labels (TaskTemplate.ContainerSpec.Labels) are Drawbridge's markers: swarmkit
//   puts them on the task containers it creates, past the Defender.
// What held without a change is checked too (path tricks on leak routes, case-variant fields).
import { existsSync } from 'node:fs';
import { readdir, readFile, symlink } from 'node:fs/promises';
import { join } from 'node:path';
import { beforeAll, describe, expect, test } from 'vitest';
import { daemonRequest } from '../support/daemon-request.js';
import { pollUntil } from '../support/poll.js';
import { secretsUnderAttack, tag } from '../support/secrets-under-attack.js';
import { chunked, RawTlsClient, rawRequest } from '../support/tls-client.js';

const s = secretsUnderAttack('defender-secrets-attacks', 'dev-atk');
const { label, DB_PASSWORD, TOKEN, ALL_VALUES, dockerHost, run, runOk, startContainer, inspectDirect, hostDirOf, rawOnce } = s;

describe('time of check, time of use', () => {
  test('renaming containers while a cp is decided never lets a secret-carrying container be read (the request is pinned to the id)', async () => {
    const secret = await startContainer('billing');
    const plain = await startContainer('plain');
    // Flip which container answers to `alias` (direct on dockerd: the attacker's other session), as fast as it can.
    const alias = `dbatk-alias-${tag()}`;
    await daemonRequest(dockerHost(), 'POST', `/containers/${plain}/rename?name=${alias}`);
    let flipping = true;
    const flipper = (async () => {
      const rename = (from: string, to: string) => daemonRequest(dockerHost(), 'POST', `/containers/${from}/rename?name=${to}`);
      while (flipping) {
        await rename(alias, plain);
        await rename(secret, alias);
        await rename(alias, secret);
        await rename(plain, alias);
      }
    })();
    const client = await RawTlsClient.connect(s.defender.port, s.eveDir);
    const seen = new Map<number, number>();
    let leaked = '';
    try {
      const until = Date.now() + 8_000;
      while (Date.now() < until && !leaked) {
        await client.write(rawRequest('GET', `/v1.41/containers/${alias}/archive?path=/run/secrets/token`));
        const res = await client.readResponse();
        seen.set(res.status, (seen.get(res.status) ?? 0) + 1);
        if (res.body.includes(TOKEN)) leaked = `status ${res.status}`;
      }
    } finally {
      flipping = false;
      await flipper;
      client.destroy();
    }
    expect(leaked, `the secret was read through '${alias}'`).toBe('');
    expect(seen.get(403), JSON.stringify([...seen])).toBeGreaterThan(0); // the check saw the secret container…
    expect([...seen.keys()].some((s) => s !== 403), JSON.stringify([...seen])).toBe(true); // …and the plain one
  });

  test('a container the Defender cannot find is answered 404 here, not forwarded by name', async () => {
    const r = await rawOnce('GET', `/containers/dbatk-nothere-${tag()}/export`);
    expect(r.status).toBe(404);
    expect(r.text).toMatch(/No such container: dbatk-nothere-/);
    const c = await rawOnce('POST', `/commit?container=dbatk-nothere-${tag()}&repo=x`);
    expect(c.status).toBe(404);
  });

  test('commit, start and --volumes-from go to dockerd with the full id (commit query pinned: a second container= is dropped)', async () => {
    const secret = await startContainer('billing');
    const plain = await startContainer('plain');
    // Go's r.Form.Get takes the first `container`; URLSearchParams too. Both orders are refused or pinned alike.
    const r = await rawOnce('POST', `/commit?container=${plain}&container=${secret}&repo=dbatk-commit&tag=${tag()}`);
    expect(r.status, r.text).toBe(201);
    const imageId = JSON.parse(r.text).Id as string;
    const img = (await daemonRequest(dockerHost(), 'GET', `/images/${imageId}/json`)).json<{ Config: { Env: string[] } }>();
    expect(JSON.stringify(img.Config.Env)).not.toContain(DB_PASSWORD);
    await daemonRequest(dockerHost(), 'DELETE', `/images/${imageId}?force=1`);
    const denied = await rawOnce('POST', `/commit?container=${secret}&container=${plain}&repo=dbatk-commit`);
    expect(denied.status).toBe(403);
  });
});

describe('restart policies', () => {
  test('a --restart always container whose process exits comes back with its /run/secrets files; docker stop removes them from the host', async () => {
    const name = await startContainer('billing', ['--restart', 'always'], ['sh', '-c', 'cat /run/secrets/token; echo; sleep 1; exit 3']);
    const dir = await hostDirOf(name);
    // RestartCount counts restarts decided, not done: the file read by the third run is the proof.
    const runs = async () => (await runOk(['logs', name])).split('\n').filter((l) => l === TOKEN).length;
    await pollUntil('two restarts by dockerd, each reading its secret file', async () => (await runs()) >= 3 || (await inspectDirect(name)).State.Running === false, 30_000, 200);
    expect(await runs(), (await inspectDirect(name)).State.Error).toBeGreaterThanOrEqual(3);
    expect(existsSync(dir)).toBe(true);
    await runOk(['stop', '-t', '1', name]);
    await pollUntil('the secret directory to be removed after docker stop', () => !existsSync(dir), 15_000, 50);
    expect((await inspectDirect(name)).State.Running).toBe(false);
  });

  test('on-failure: exit 0 does not restart, so the files go; --restart no (the default) as before', async () => {
    const name = await startContainer('billing', ['--restart', 'on-failure:3'], ['sh', '-c', 'sleep 1; exit 0']);
    const dir = await hostDirOf(name);
    expect(existsSync(dir)).toBe(true);
    await pollUntil('the secret directory to be removed after a clean exit', () => !existsSync(dir), 15_000, 50);
    expect((await inspectDirect(name)).RestartCount).toBe(0);
  });

  test('on-failure with retries exhausted removes the files', async () => {
    const name = await startContainer('billing', ['--restart', 'on-failure:1'], ['sh', '-c', 'cat /run/secrets/token; echo; exit 1']);
    const dir = await hostDirOf(name);
    await pollUntil('retries exhausted and the directory removed', async () => !existsSync(dir) && (await inspectDirect(name)).State.Restarting === false && (await inspectDirect(name)).RestartCount === 1, 20_000, 100);
    expect((await runOk(['logs', name])).split('\n').filter((l) => l === TOKEN).length).toBe(2); // the retry had its file
  });
});

describe('the secrets directory is not mountable', () => {
  let victim: string;
  let victimDir: string;
  beforeAll(async () => {
    victim = await startContainer('billing');
    victimDir = await hostDirOf(victim);
  });

  test.each([
    ['-v of the base', (): string[] => ['-v', `${s.secretsDir}:/x:ro`]],
    ['-v of a container directory', (): string[] => ['-v', `${victimDir}:/x`]],
    ['-v of /dev/shm (above the base)', (): string[] => ['-v', '/dev/shm:/x']],
    ['-v of / (above everything)', (): string[] => ['-v', '/:/host']],
    ['-v of /proc (every process\'s environ and root)', (): string[] => ['-v', '/proc:/x']],
    ['--mount type=bind', (): string[] => ['--mount', `type=bind,src=${s.secretsDir}/../${s.secretsDir.split('/').pop()},dst=/x`]],
    ['--mount type=volume with local bind options', (): string[] => ['--mount', `type=volume,dst=/x,volume-driver=local,volume-opt=type=none,volume-opt=o=bind,volume-opt=device=${s.secretsDir}`]],
  ])('%s is refused', async (_what, args) => {
    const r = await run(['run', '--rm', '--label', label, ...args(), s.image, 'sh', '-c', 'cat /x/*/token /host/dev/shm/*/*/token 2>/dev/null; true']);
    expect(r.stdout).not.toContain(TOKEN);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain("which holds or contains the containers' secrets");
  });

  test('a host symlink into the base is resolved before the decision', async () => {
    const link = join(s.work, 'innocent');
    await symlink(s.secretsDir, link);
    const r = await run(['run', '--rm', '--label', label, '-v', `${link}:/x`, s.image, 'sh', '-c', 'cat /x/*/token']);
    expect(r.stdout).not.toContain(TOKEN);
    expect(r.stderr).toContain(`the request mounts the host path ${s.secretsDir}`);
  });

  test('a case-variant field (binds) is read as dockerd reads it', async () => {
    const body = JSON.stringify({ Image: s.image, Cmd: ['true'], Labels: { 'drawbridge.test': 'defender-secrets-attacks' }, hostconfig: { binds: [`${s.secretsDir}:/x`] } });
    const r = await rawOnce('POST', '/containers/create', {}, body);
    expect(r.status).toBe(403);
    expect(r.text).toContain("which holds or contains the containers' secrets");
  });

  test('a swarm service mounting the base is refused before dockerd sees it (swarmkit creates its containers)', async () => {
    const r = await run(['service', 'create', '--name', `dbatk-svc-${tag()}`, '--mount', `type=bind,src=${s.secretsDir},dst=/x`, s.image, 'sleep', '600']);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain("which holds or contains the containers' secrets");
  });

  test('docker volume create of a local bind volume on the base, or of a procfs volume (inline too), is refused', async () => {
    const r = await run(['volume', 'create', '--label', label, '--opt', 'type=none', '--opt', 'o=bind', '--opt', `device=${s.secretsDir}`, `dbatk-vol-${tag()}`]);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain("which holds or contains the containers' secrets");
    const proc = await run(['volume', 'create', '--label', label, '--opt', 'type=proc', '--opt', 'device=none', `dbatk-proc-${tag()}`]);
    expect(proc.stderr).toContain("the request mounts the host path /proc, which holds or contains the containers' secrets");
    // Precaution: the local driver mounts on the host, so a procfs volume would be the host's /proc (here the
    // mount comes out empty under this dockerd, so the leak itself is not shown).
    const inline = await run(['run', '--rm', '--label', label, '--mount', 'type=volume,dst=/x,volume-driver=local,volume-opt=type=proc,volume-opt=device=none', s.image, 'sh', '-c', 'cat /x/*/environ | tr "\\0" "\\n" | grep DB_PASSWORD']);
    expect(inline.stdout).not.toContain(DB_PASSWORD);
    expect(inline.stderr).toContain('the request mounts the host path /proc');
    expect(await runOk(['volume', 'create', '--label', label, `dbatk-ok-${tag()}`])).toMatch(/dbatk-ok-/); // an ordinary one still works
  });
});

describe('sharing with a secret-carrying container', () => {
  test('--link (which copies its env into <ALIAS>_ENV_*) is refused like --volumes-from', async () => {
    const secret = await startContainer('billing');
    const r = await run(['run', '--rm', '--label', label, '--link', `${secret}:db`, s.image, 'env']);
    expect(r.stdout).not.toContain(DB_PASSWORD);
    expect(r.stderr).toContain(`a container sharing the mounts or processes of '${secret}' is denied`);
  });
});

describe('forged markers in an image', () => {
  test('a container of an image carrying io.drawbridge.* labels cannot overwrite or remove another container\'s secret files', async () => {
    const victim = await startContainer('billing');
    const instance = (await inspectDirect(victim)).Config.Labels['io.drawbridge.secrets.instance'] as string;
    const base = await startContainer('plain');
    const forgedImage = `dbatk-forged:${tag()}`;
    const changes = [
      'label io.drawbridge.secrets.rules=token-all',
      'label io.drawbridge.secrets.files=token',
      `label io.drawbridge.secrets.instance=${instance}`,
    ];
    await runOk(['commit', ...changes.flatMap((c) => ['--change', c]), base, forgedImage]);
    try {
      const forged = `dbatk-forged-${tag()}`;
      const r = await run(['run', '-d', '--name', forged, '--label', label, forgedImage, 'sleep', '1']);
      expect(r.stderr).toContain("carries Drawbridge's secret labels but was not given secrets by the Defender");
      await runOk(['rm', '-f', forged]);
      await new Promise((resolve) => setTimeout(resolve, 500)); // the destroy event has been handled by now
      expect(await runOk(['exec', victim, 'cat', '/run/secrets/token'])).toBe(TOKEN);
    } finally {
      await daemonRequest(dockerHost(), 'DELETE', `/images/${forgedImage}?force=1`);
    }
  });
});

describe('forged markers in a swarm service spec (swarmkit labels its task containers with them)', () => {
  // This dockerd is no swarm manager: a spec that reaches it is answered 503, so a 400 naming the labels is the
  // Defender's refusal, before dockerd sees the request.
  const spec = (labels: Record<string, string>, field = 'Labels') => JSON.stringify({ Name: `dbatk-svc-${tag()}`, TaskTemplate: { ContainerSpec: { Image: s.image, Args: ['sleep', '600'], [field]: labels } } });

  test('docker service create --container-label io.drawbridge.* is refused, as docker run --label is', async () => {
    const r = await run(['service', 'create', '--name', `dbatk-svc-${tag()}`, '--container-label', 'io.drawbridge.secrets.rules=db-env', '--container-label', 'io.drawbridge.secrets.allow=copy', s.image, 'sleep', '600']);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain("labels starting with 'io.drawbridge.' are reserved for the Drawbridge Defender; remove 'io.drawbridge.secrets.");
    for (const key of ['io.drawbridge.secrets.rules', 'io.drawbridge.secrets.allow']) expect(r.stderr).toContain(`'${key}'`); // in the CLI's order
    const container = await run(['run', '--rm', '--label', label, '--label', 'io.drawbridge.secrets.rules=db-env', s.image, 'true']);
    expect(container.stderr).toContain("labels starting with 'io.drawbridge.' are reserved for the Drawbridge Defender");
  });

  test('service create and update with the markers in ContainerSpec.Labels (any letter case) are refused (400); without them they reach dockerd', async () => {
    for (const [method, target] of [['POST', '/v1.41/services/create'], ['POST', '/v1.41/services/dbatk-svc/update?version=1']] as const) {
      for (const body of [spec({ 'io.drawbridge.secrets.rules': 'db-env' }), spec({ 'io.drawbridge.secrets.allow': 'copy' }, 'labels')]) {
        const r = await rawOnce(method, target, {}, body);
        expect(r.status, `${target}: ${r.text}`).toBe(400);
        expect(r.text).toContain("labels starting with 'io.drawbridge.' are reserved for the Drawbridge Defender");
      }
      const plain = await rawOnce(method, target, {}, spec({ app: 'billing' }));
      expect(plain.status, `${target}: ${plain.text}`).toBe(503);
      expect(plain.text).toContain('swarm');
    }
  });
});

describe('parser differentials and process views', () => {
  test('a repeated HostConfig or Labels (Go merges the objects, JSON.parse keeps the last) cannot smuggle a bind or forge markers', async () => {
    const bind = `"HostConfig":{"Binds":[${JSON.stringify(`${s.secretsDir}:/x:ro`)}]},"HostConfig":{"AutoRemove":false}`;
    const forged = '"Labels":{"io.drawbridge.secrets.rules":"db-env","drawbridge.test":"defender-secrets-attacks"},"Labels":{"app":"plain"}';
    for (const [what, fields] of [['HostConfig', bind], ['Labels', forged]] as const) {
      const body = `{"Image":${JSON.stringify(s.image)},"Cmd":["true"],${fields}}`;
      // What dockerd makes of it, past the Defender: both objects, merged.
      const direct = await daemonRequest(dockerHost(), 'POST', '/containers/create', Buffer.from(body), { 'Content-Type': 'application/json' });
      const id = direct.json<{ Id: string }>().Id;
      const made = await inspectDirect(id);
      await daemonRequest(dockerHost(), 'DELETE', `/containers/${id}?force=1`);
      if (what === 'HostConfig') expect(made.HostConfig.Binds).toEqual([`${s.secretsDir}:/x:ro`]);
      else expect(made.Config.Labels).toMatchObject({ 'io.drawbridge.secrets.rules': 'db-env', app: 'plain' });
      const r = await rawOnce('POST', '/containers/create', {}, body);
      expect(r.status, r.text).toBe(400);
      expect(r.text).toContain(`gives '${what}' twice in one object`);
    }
  });

  test('docker top with ps options that can print the environment is refused for a container with env secrets; the allowed ones never print it', async () => {
    const secret = await startContainer('billing');
    // BSD `e`, and UNIX `-e` in lines procps re-reads as BSD because one word is not a UNIX option
    const refused = ['aux e', 'auxe', '-ef e', '-o pid,args e', '-ex', '-e -x', '-x -e', '-aex', '-ewx', '-eaux', '-e -t', '-ef -x', '-ef -o pid,args', '-t -o e'];
    for (const args of refused) {
      const r = await run(['top', secret, ...args.split(' ')]);
      expect(r.stdout, args).not.toContain(DB_PASSWORD);
      expect(r.stderr, args).toContain('docker top with ps options that can show the environment');
    }
    // What is let through runs the host's real ps: none of it may print the environment.
    const allowed = ['-ef', 'aux', '-eo pid,user,args', '-e -o pid,user,args', '-o pid,user,etime,args', 'axo pid,user,args', '--forest -ef', '-eLf', '-elf', '-eF', '-f -o pid,args', '-x'];
    for (const args of allowed) {
      const r = await run(['top', secret, ...args.split(' ')]);
      expect(r.stderr, args).not.toContain('docker top with ps options');
      expect(r.stdout + r.stderr, args).not.toContain(DB_PASSWORD);
    }
    expect(await runOk(['top', secret, '-eo', 'pid,user,args'])).toContain('sleep 600');
    expect(await runOk(['top', secret, '-ef'])).toContain('sleep 600');
    expect(await runOk(['top', secret])).toContain('sleep 600');
  });

  test('a checkpoint (CRIU memory dump, experimental) of a secret-carrying container is a copy path', async () => {
    const secret = await startContainer('billing');
    const r = await rawOnce('POST', `/containers/${secret}/checkpoints`, {}, JSON.stringify({ CheckpointID: 'c1' }));
    expect(r.status).toBe(403);
    expect(r.text).toContain('(docker checkpoint create) is denied');
  });

  test('--pid host (every process\'s /proc/<pid>/environ and root) is refused', async () => {
    await startContainer('billing');
    const r = await run(['run', '--rm', '--label', label, '--pid', 'host', s.image, 'sh', '-c', 'cat /proc/*/environ 2>/dev/null | tr "\\0" "\\n" | grep DB_PASSWORD; cat /proc/*/root/run/secrets/token 2>/dev/null']);
    expect(r.stdout).not.toContain(DB_PASSWORD);
    expect(r.stdout).not.toContain(TOKEN);
    expect(r.stderr).toContain('--pid host');
  });
});

describe('what held', () => {
  test('path tricks on leak routes are rejected or denied, never forwarded', async () => {
    const secret = await startContainer('billing');
    for (const [method, target] of [
      ['GET', `/v1.41//containers/${secret}/export`],
      ['GET', `/containers/./${secret}/export`],
      ['GET', `/containers/${secret}/../${secret}/export`],
      ['GET', `/containers/${secret}%2Fexport`],
      ['GET', `/v1.41/containers/${secret}/%65xport`],
      ['HEAD', `/containers/${secret}/archive?path=/run/secrets/token`],
      ['GET', `/v1.24/containers/${secret}/archive?path=/run/secrets/token`],
      ['POST', `/containers/${secret}/copy`],
      ['GET', `/V1.41/containers/${secret}/export`],
      ['GET', `/containers/${secret}/export#x`],
    ] as const) {
      const r = await rawOnce(method, target);
      expect([400, 403, 404], `${method} ${target}: ${r.status} ${r.text}`).toContain(r.status);
      expect(r.text).not.toContain(TOKEN);
    }
  });

  test('a chunked create body is injected and checked like any other; a BOM or an empty body never reaches a create with secrets', async () => {
    const body = JSON.stringify({ Image: s.image, Cmd: ['true'], Labels: { 'drawbridge.test': 'defender-secrets-attacks', app: 'billing' }, HostConfig: { Binds: [`${s.secretsDir}:/x`] } });
    const client = await RawTlsClient.connect(s.defender.port, s.eveDir);
    try {
      await client.write(Buffer.concat([rawRequest('POST', '/containers/create', { 'Content-Type': 'application/json', 'Transfer-Encoding': 'chunked' }), chunked(body, 7)]));
      const res = await client.readResponse();
      expect(res.status, res.text()).toBe(403); // the smuggled bind was seen
    } finally {
      client.destroy();
    }
    const clean = JSON.stringify({ Image: s.image, Cmd: ['true'], Labels: { 'drawbridge.test': 'defender-secrets-attacks', app: 'billing' } });
    const c2 = await RawTlsClient.connect(s.defender.port, s.eveDir);
    try {
      await c2.write(Buffer.concat([rawRequest('POST', '/containers/create', { 'Content-Type': 'application/json', 'Transfer-Encoding': 'chunked' }), chunked(clean, 5)]));
      const res = await c2.readResponse();
      expect(res.status, res.text()).toBe(201);
      const env = (await inspectDirect(res.json<{ Id: string }>().Id)).Config.Env as string[];
      expect(env).toContain(`DB_PASSWORD=${DB_PASSWORD}`);
    } finally {
      c2.destroy();
    }
    const bom = await rawOnce('POST', '/containers/create', {}, `\ufeff${clean}`);
    expect(bom.status).toBe(400);
    const empty = await rawOnce('POST', '/containers/create', { 'Content-Type': 'application/json', 'Content-Length': 0 });
    expect(empty.status, empty.text).toBeGreaterThanOrEqual(400); // dockerd refuses a create without a config (this version: 500)
  });

  test('no secret value in the Defender\'s log, audit, state, or the Console\'s directory', async () => {
    const texts: [string, Buffer][] = [['defender log', Buffer.from(s.defender.log())], ['console log', Buffer.from(s.consoleProc.log())]];
    const walk = async (dir: string): Promise<void> => {
      for (const entry of await readdir(dir, { withFileTypes: true })) {
        const path = join(dir, entry.name);
        if (entry.isDirectory()) await walk(path);
        // An audit spool segment may be uploaded and removed between the listing and the read: gone, it holds nothing.
        else if (entry.isFile()) {
          const bytes = await readFile(path).catch((err: NodeJS.ErrnoException) => {
            if (err.code === 'ENOENT') return null;
            throw err;
          });
          if (bytes) texts.push([path, bytes]);
        }
      }
    };
    await walk(s.defender.dir);
    await walk(s.consoleProc.dir);
    for (const [where, bytes] of texts) for (const value of ALL_VALUES) expect(bytes.includes(value), `${value} found in ${where}`).toBe(false);
  });
});
