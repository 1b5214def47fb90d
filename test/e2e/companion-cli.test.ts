// The `drawbridge` companion CLI on a developer's machine, all real: the Console binary and two enrolled
// Defenders (dev-a, prod-a) in front of the private dockerd, gnome-keyring on a private D-Bus with a throwaway
// HOME, headless Chromium (Playwright) as the system browser signing in on the Console's own page, and the real
// docker CLI using what login wrote. Loopback login, the contexts and cert files, `use`/`env`/`can`/`hosts`,
// Ctrl-C and the timeout, no keychain, logout back to the byte, and the device flow.
import { readFile, readdir, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { browserSignIn, createCompanionMachine, deviceSignIn, launchChromium, snapshotTree, type CompanionMachine, type TreeSnapshot } from '../support/companion-cli.js';
import { ALICE, startCompanionWorld, type CompanionWorld } from '../support/companion-world.js';
import type {} from '../support/global-setup.js';
import { pollUntil } from '../support/poll.js';
import { requireSystem } from '../support/system-check.js';

const SUMMARY_DEV = 'can run containers, list containers, build images, pull images, push images; cannot exec';

let world: CompanionWorld;
let machine: CompanionMachine;
let browser: Browser;
let caFile: string;
let before: TreeSnapshot;

/** Items the Secret Service itself holds for the service `drawbridge` (asked over D-Bus, not through our code). */
async function keychainItems(): Promise<string[]> {
  const r = await machine.keyring.runWithKeychain(
    'dbus-send --session --print-reply=literal --dest=org.freedesktop.secrets /org/freedesktop/secrets org.freedesktop.Secret.Service.SearchItems dict:string:string:service,drawbridge',
  );
  return r.stdout.match(/\/org\/freedesktop\/secrets\/collection\/\S+/g) ?? [];
}

async function loginWithBrowser(args: readonly string[] = []): Promise<{ code: number | null; stdout: string; stderr: string; page: string }> {
  const run = machine.startCli(['login', world.console.url, '--ca', caFile, ...args]);
  const url = await machine.nextUrl();
  expect(url).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/start$/); // no state in the opener's arguments: /start redirects
  const page = await browserSignIn(browser, url, ALICE.name, ALICE.password);
  return { ...(await run.exited()), page };
}

beforeAll(async () => {
  await requireSystem(['chromium', 'gnome-keyring', 'dbus']);
  world = await startCompanionWorld({ dockerHost: inject('dockerHost') });
  machine = await createCompanionMachine();
  browser = await launchChromium(world.consolePin);
  caFile = join(machine.keyring.dir, 'console-ca.pem');
  await writeFile(caFile, world.console.caPem);
  // A ~/.docker that is already in use: a context of the user's own (current), config.json, and cert files.
  const made = await machine.docker(['context', 'create', 'mine', '--docker', 'host=tcp://127.0.0.1:1']);
  expect(made.code, made.stderr).toBe(0);
  expect((await machine.docker(['context', 'use', 'mine'])).code).toBe(0);
  for (const f of ['ca.pem', 'cert.pem', 'key.pem']) await writeFile(join(machine.dockerDir, f), `my own ${f}\n`, { mode: 0o644 });
  before = await snapshotTree(machine.dockerDir);
});

afterAll(async () => {
  await browser?.close();
  await machine?.remove();
  await world?.stop();
});

describe('before login', () => {
  it('without a keychain, login refuses before opening a browser and names the explicit fallback (exit 5)', async () => {
    const r = await machine.cli(['login', world.console.url, '--ca', caFile], { keychain: false });
    expect(r.code, r.stderr).toBe(5);
    expect(r.stderr).toMatch(/no OS keychain is reachable .* pass --insecure-file-store/);
    expect(await snapshotTree(machine.dockerDir)).toEqual(before);
  });

  it('an unverifiable Console is refused with what to do (exit 4)', async () => {
    const r = await machine.cli(['login', world.console.url]);
    expect(r.code, r.stderr).toBe(4);
    expect(r.stderr).toContain('give its CA with --ca FILE');
  });

  it('Ctrl-C while waiting for the browser: exit 130, nothing written', async () => {
    const run = machine.startCli(['login', world.console.url, '--ca', caFile]);
    await machine.nextUrl();
    run.child.kill('SIGINT');
    const r = await run.exited();
    expect(r.code, r.stderr).toBe(130);
    expect(r.stderr).toContain('cancelled (SIGINT); nothing was written');
    expect(await snapshotTree(machine.dockerDir)).toEqual(before);
  });

  it('another program opening the sign-in address before the browser stops the login (exit 3), nothing written', async () => {
    // Another user of the machine can read the address in the browser opener's arguments; it holds no secret, and
    // a second visit ends the login, so they can neither learn the state nor log this CLI in as themselves.
    const run = machine.startCli(['login', world.console.url, '--ca', caFile]);
    const url = await machine.nextUrl();
    const first = await fetch(url, { redirect: 'manual' });
    expect(first.status).toBe(302);
    expect(first.headers.get('location')).toMatch(new RegExp(`^${world.console.url}/oauth/auth\\?.*state=`));
    const context = await browser.newContext(); // then the user's browser
    let page: string;
    try {
      const tab = await context.newPage();
      await tab.goto(url);
      page = (await tab.locator('main').textContent()) ?? '';
    } finally {
      await context.close();
    }
    const r = await run.exited();
    expect(r.code, r.stderr).toBe(3);
    expect(r.stderr).toContain('the sign-in address was opened twice, by the browser and by something else (another program or user on this machine?); nothing was signed in; run the login again');
    expect(page).toContain('Sign-in stopped');
    expect(await snapshotTree(machine.dockerDir)).toEqual(before);
  });

  it('no sign-in within --timeout: exit 130, nothing written', async () => {
    const r = await machine.cli(['login', world.console.url, '--ca', caFile, '--timeout', '1', '--json']);
    await machine.nextUrl();
    expect(r.code).toBe(130);
    expect(JSON.parse(r.stdout).error).toMatchObject({ code: 'TIMED_OUT', exitCode: 130 });
    expect(await snapshotTree(machine.dockerDir)).toEqual(before);
  });

  it('a Console that does not answer: exit 4 with what to check', async () => {
    const r = await machine.cli(['login', 'https://127.0.0.1:1', '--ca', caFile]);
    expect(r.code, r.stderr).toBe(4);
    expect(r.stderr).toMatch(/cannot reach the Console at https:\/\/127\.0\.0\.1:1 .*check the URL and your network/);
  });

  it('commands that need a login say how to get one (exit 3); bad arguments are usage errors (exit 2)', async () => {
    for (const args of [['use', 'dev-a'], ['renew'], ['can', 'container_list', '--host', 'dev-a']]) {
      const r = await machine.cli(args);
      expect(r.code, args.join(' ')).toBe(3);
      expect(r.stderr).toContain('not logged in; run drawbridge login <console-url>');
    }
    expect((await machine.cli(['use'])).code).toBe(2);
    expect((await machine.cli(['login', world.console.url, '--no-such-flag'])).code).toBe(2);
    expect((await machine.cli(['login', 'ftp://x'])).code).toBe(2);
    expect(await snapshotTree(machine.dockerDir)).toEqual(before);
  });

  it('status says how to log in (exit 3)', async () => {
    const r = await machine.cli(['status']);
    expect(r.code).toBe(3);
    expect(r.stdout).toContain('drawbridge login <console-url>');
  });
});

describe('loopback login in the browser', () => {
  it('signs in on the Console page, answers the tab, and makes one context per host; the current context stays', async () => {
    const r = await loginWithBrowser(['--json']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.page).toContain('Signed in as alice. Your docker contexts are ready (2 host(s)).');
    expect(r.page).toContain('You can close this tab.');
    const result = JSON.parse(r.stdout);
    expect(result).toMatchObject({ console: world.console.url, user: 'alice', groups: ['devs'], secretBackend: 'keychain' });
    expect(result.hosts.map((h: { context: string }) => h.context)).toEqual(['drawbridge-dev-a', 'drawbridge-prod-a']);
    const ls = await machine.docker(['context', 'ls', '--format', '{{.Name}} {{.Current}} {{.DockerEndpoint}}']);
    expect(ls.stdout).toContain(`drawbridge-dev-a false tcp://127.0.0.1:${world.devA.port}`);
    expect(ls.stdout).toContain(`drawbridge-prod-a false tcp://127.0.0.1:${world.prodA.port}`);
    expect(ls.stdout).toContain('mine true');
  });

  it('keeps the private key and refresh token in the keychain, not in files; cert files are 0600 with the user backed up', async () => {
    expect(await keychainItems()).toHaveLength(2);
    expect(await readdir(join(machine.dockerDir, 'drawbridge'))).not.toContain('secrets');
    for (const f of ['ca.pem', 'cert.pem', 'key.pem']) {
      expect((await stat(join(machine.dockerDir, f))).mode & 0o777).toBe(0o600);
      expect(await readFile(join(machine.dockerDir, f), 'utf8')).toMatch(/^-----BEGIN /);
    }
    expect((await stat(join(machine.dockerDir, 'drawbridge', 'state.json'))).mode & 0o777).toBe(0o600);
  });

  it('the docker CLI uses the contexts: allowed on dev-a, a denied command shows the rule', async () => {
    const ps = await machine.docker(['--context', 'drawbridge-dev-a', 'ps']);
    expect(ps.code, ps.stderr).toBe(0);
    const denied = await machine.docker(['--context', 'drawbridge-dev-a', 'volume', 'ls']);
    expect(denied.code).not.toBe(0);
    expect(denied.stderr).toContain("[Drawbridge] The command 'volume_list' denied for user 'alice' by rule 'no-volumes'");
    // The cert files serve DOCKER_HOST users too.
    const viaEnv = await machine.docker(['ps'], { DOCKER_HOST: `tcp://127.0.0.1:${world.devA.port}`, DOCKER_TLS_VERIFY: '1' });
    expect(viaEnv.code, viaEnv.stderr).toBe(0);
  });

  it('hosts shows what alice may do; can answers with exit 0 or 1 and the deciding rule', async () => {
    const hosts = await machine.cli(['hosts']);
    expect(hosts.code, hosts.stderr).toBe(0);
    expect(hosts.stdout).toContain(`dev-a   ${SUMMARY_DEV}`);
    expect(hosts.stdout).toContain('docker --context drawbridge-prod-a');
    const yes = await machine.cli(['can', 'container_create', '--host', 'dev-a']);
    expect(yes.code).toBe(0);
    expect(yes.stdout).toContain("allowed by rule 'devs-on-dev'");
    const no = await machine.cli(['can', 'container_exec_create', '--host', 'dev-a', '--json']);
    expect(no.code).toBe(1);
    expect(JSON.parse(no.stdout)).toMatchObject({ allowed: false, rule: 'no-exec' });
    const typo = await machine.cli(['can', 'container_creat', '--host', 'dev-a']);
    expect(typo.code).toBe(2);
    expect(typo.stderr).toContain("'container_creat' is not a Docker action");
  });

  it('use switches plain `docker ps` between hosts, and warns when DOCKER_HOST would override it', async () => {
    const auditA = (await world.devA.audit()).length;
    const auditP = (await world.prodA.audit()).length;
    expect((await machine.cli(['use', 'dev-a'])).code).toBe(0);
    expect((await machine.docker(['ps'])).code).toBe(0);
    expect((await world.devA.auditSince(auditA, 2)).map((e) => [e.action, e.user])).toContainEqual(['container_list', 'alice']);
    const toProd = await machine.cli(['use', 'prod-a'], { env: { DOCKER_HOST: 'tcp://127.0.0.1:2' } });
    expect(toProd.code).toBe(0);
    expect(toProd.stderr).toContain('DOCKER_HOST=tcp://127.0.0.1:2 overrides the current context');
    expect(toProd.stderr).toContain('unset DOCKER_HOST');
    expect((await machine.docker(['context', 'show'])).stdout.trim()).toBe('drawbridge-prod-a');
    expect((await machine.docker(['ps'])).code).toBe(0);
    expect((await world.prodA.auditSince(auditP, 2)).map((e) => [e.action, e.user])).toContainEqual(['container_list', 'alice']);
    const run = await machine.docker(['run', '--rm', inject('testImage'), 'true']);
    expect(run.stderr).toContain("[Drawbridge] The command 'container_create' denied for user 'alice'");
  });

  it('env prints the variables for one host, usable with eval', async () => {
    const r = await machine.cli(['env', 'dev-a']);
    expect(r.stdout).toMatch(new RegExp(`^export DOCKER_HOST=tcp://127.0.0.1:${world.devA.port} DOCKER_TLS_VERIFY=1 DOCKER_CERT_PATH=\\S+\\n$`));
    const sh = await machine.keyring.runWithKeychain(`eval "$("$NODE" "$BIN" env dev-a)" && docker ps --format '{{.ID}}' && echo OK`, { ...machine.env(), NODE: process.execPath, BIN: (await import('../support/defender-process.js')).DRAWBRIDGE_BIN });
    expect(sh.stdout, sh.stderr).toContain('OK');
  });

  it('status shows user, Console, certificate, renewal and hosts', async () => {
    const r = await machine.cli(['status', '--json']);
    expect(r.code).toBe(0);
    const s = JSON.parse(r.stdout);
    expect(s).toMatchObject({ state: 'active', console: world.console.url, user: 'alice', secretBackend: 'keychain' });
    // Two thirds into the lifetime counted from arrival (notBefore is back-dated for clock skew).
    const lifetime = Date.parse(s.cert.notAfter) - Date.parse(s.cert.receivedAt);
    expect(Date.parse(s.renewal.dueAt)).toBeCloseTo(Date.parse(s.cert.receivedAt) + (lifetime * 2) / 3, -3);
    const human = await machine.cli(['status']);
    expect(human.stdout).toContain('User:        alice (groups: devs)');
    expect(human.stdout).toContain('Secrets:     OS keychain');
  });

  it('logout revokes the login and its certificate, empties the keychain and leaves ~/.docker exactly as before login', async () => {
    const serial = JSON.parse((await machine.cli(['status', '--json'])).stdout).cert.serial as string;
    const r = await machine.cli(['logout']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain('(login and certificate revoked at the Console)');
    const certs = await world.console.call('GET', '/api/v1/certs?user=alice&limit=500', { token: await world.console.adminToken() });
    expect(certs.body.items.find((c: { serial: string }) => c.serial.toLowerCase() === serial.toLowerCase())).toMatchObject({ status: 'revoked' });
    expect(await keychainItems()).toEqual([]);
    expect(await snapshotTree(machine.dockerDir)).toEqual(before);
    expect((await machine.docker(['context', 'show'])).stdout.trim()).toBe('mine');
    expect((await machine.cli(['logout', '--json'])).stdout).toContain('"wasLoggedIn":false');
  });
});

describe('device flow', () => {
  it('prints a code and URL, the user confirms in a browser, and the contexts appear; --pin verifies the Console', async () => {
    const run = machine.startCli(['login', world.console.url, '--device', '--pin', `sha256//${world.consolePin}`]);
    const prompt = await pollUntil('the device code', () => /open (\S+) and enter the code (\S+)/.exec(run.stderr()) ?? undefined, 20_000, 50);
    expect(prompt[1]).toBe(`${world.console.url}/oauth/device`);
    expect(await deviceSignIn(browser, prompt[1]!, prompt[2]!, ALICE.name, ALICE.password)).toBe('You are signed in');
    const r = await run.exited();
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain('Logged in to');
    expect((await machine.docker(['--context', 'drawbridge-prod-a', 'ps'])).code).toBe(0);
    expect((await machine.cli(['logout'])).code).toBe(0);
    expect(await snapshotTree(machine.dockerDir)).toEqual(before);
  });
});

describe('without a keychain, by explicit choice', () => {
  it('--insecure-file-store keeps the secrets in 0600 files, says so, and logout removes them', async () => {
    const run = machine.startCli(['login', world.console.url, '--ca', caFile, '--insecure-file-store'], { keychain: false });
    await browserSignIn(browser, await machine.nextUrl(), ALICE.name, ALICE.password);
    const r = await run.exited();
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toContain('your private key and refresh token are in files with mode 0600 (--insecure-file-store)');
    const secrets = join(machine.dockerDir, 'drawbridge', 'secrets');
    const files = await readdir(secrets);
    expect(files).toHaveLength(2);
    expect((await stat(secrets)).mode & 0o777).toBe(0o700);
    for (const f of files) expect((await stat(join(secrets, f))).mode & 0o777).toBe(0o600);
    expect(await keychainItems()).toEqual([]);
    // Later commands use the files, even where a keychain is reachable.
    const renew = await machine.cli(['renew']);
    expect(renew.code, renew.stderr).toBe(0);
    expect((await machine.cli(['status'])).stdout).toContain('Secrets:     files (0600), --insecure-file-store');
    expect((await machine.cli(['logout'], { keychain: false })).code).toBe(0);
    expect(await snapshotTree(machine.dockerDir)).toEqual(before);
  });
});
