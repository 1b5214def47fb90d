/**
 * `npm run bench:companion [-- --rounds 7]`: the companion's login and renewal against the real Console binary,
 * with the real keychain (gnome-keyring on a private D-Bus, throwaway HOME) and a real headless Chromium signing
 * in on the Console's page. Prints figures and the target next to them; asserts nothing.
 *
 * 1. Login: from the loopback redirect arriving to the docker contexts being ready (the companion's own clock,
 *    `redirectToReadyMs`: code exchange, key pair, CSR → certificate, host list, two contexts + cert files,
 *    keychain writes, state file). Target ≤ 1 s. Each round logs out first.
 *    Baseline in the same run: the bare protocol for the same result — code exchange, `POST /certs` with a
 *    pre-made CSR, `GET /me/hosts` — with nothing written anywhere (test/support/oauth-client.ts).
 * 2. Renewal: `renewCertificate` (refresh-token rotation, new key, certificate, hosts, contexts, keychain, state).
 *    Baseline: refresh grant + `POST /certs` with a pre-made CSR.
 *
 * The Console has two enrolled Defender hosts (enrolled through the API; no Defender process is needed for this).
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import * as client from 'openid-client';
import type { Browser } from 'playwright-core';
import { login, logout, renewCertificate } from '../../main/index.js';
import { launchChromium, signInOnConsolePage } from '../support/companion-cli.js';
import { enrollDefender } from '../support/console-defender-client.js';
import { startConsoleProcess, type ConsoleProcess } from '../support/console-process.js';
import { makeCsr } from '../support/csr.js';
import { createKeyringHome, type KeyringHome, type KeyringSession } from '../support/keyring.js';
import { discoverConsole, loopbackReceiver, servedSpkiPin } from '../support/oauth-client.js';
import { WORLD_RULES, ALICE } from '../support/companion-world.js';
import { fmt, median, ratioRows, table } from './report.js';

const { values: opt } = parseArgs({ options: { rounds: { type: 'string', default: '7' } } });
const ROUNDS = Number(opt.rounds);
const SCOPE = 'openid offline_access drawbridge';

const progress = (s: string): void => console.log(`bench: ${s}`);

let cp: ConsoleProcess | undefined;
let keyring: KeyringHome | undefined;
let session: KeyringSession | undefined;
let browser: Browser | undefined;

/** Signs in for `url` in a fresh browser context and waits until the loopback page has answered. */
async function signIn(url: string): Promise<void> {
  const context = await browser!.newContext();
  try {
    const page = await context.newPage();
    await page.goto(url);
    await signInOnConsolePage(page, ALICE.name, ALICE.password);
    await page.waitForURL(/^http:\/\/127\.0\.0\.1:\d+\/callback/);
  } finally {
    await context.close();
  }
}

async function setup(): Promise<{ configDir: string; caFile: string }> {
  cp = await startConsoleProcess();
  const admin = await cp.adminToken();
  await cp.call('POST', '/api/v1/users', { token: admin, json: { name: ALICE.name, password: ALICE.password, role: 'user', groups: [...ALICE.groups] } });
  await cp.call('PUT', '/api/v1/rules/import', { token: admin, text: WORLD_RULES });
  for (const [host, port] of [['dev-a', 9998], ['prod-a', 9999]] as const) {
    const token = (await cp.call('POST', '/api/v1/defenders/join-tokens', { token: admin, json: {} })).body.token as string;
    const r = await enrollDefender(cp, token, host, { listener: { type: 'tcp', address: `127.0.0.1:${port}` } });
    if (!r.ok) throw new Error(`enrolling ${host} failed: ${r.res.status} ${r.res.text}`);
  }
  keyring = await createKeyringHome();
  session = await keyring.startSession();
  // The keychain library talks to the session bus named in this process's environment.
  for (const k of ['HOME', 'XDG_RUNTIME_DIR', 'DBUS_SESSION_BUS_ADDRESS'] as const) process.env[k] = session.env[k];
  browser = await launchChromium(await servedSpkiPin(cp.port));
  const caFile = join(keyring.dir, 'ca.pem');
  await writeFile(caFile, cp.caPem);
  return { configDir: join(keyring.home, '.docker'), caFile };
}

async function companionLogin(configDir: string): Promise<number> {
  let signingIn: Promise<void> | undefined;
  const result = await login({
    consoleUrl: cp!.url,
    configDir,
    ca: cp!.caPem,
    signal: new AbortController().signal,
    flow: { kind: 'browser', openBrowser: async (url) => ((signingIn = signIn(url)), true), onUrl: () => undefined },
  });
  await signingIn;
  return result.redirectToReadyMs!;
}

async function bareLogin(config: client.Configuration, csr: string): Promise<number> {
  const receiver = await loopbackReceiver();
  try {
    const verifier = client.randomPKCECodeVerifier();
    const state = client.randomState();
    const url = client.buildAuthorizationUrl(config, { redirect_uri: receiver.redirectUri, scope: SCOPE, code_challenge: await client.calculatePKCECodeChallenge(verifier), code_challenge_method: 'S256', state });
    const arrived = receiver.next();
    const signingIn = signIn(url.href);
    const callback = await arrived;
    const t0 = performance.now();
    const tokens = await client.authorizationCodeGrant(config, callback, { pkceCodeVerifier: verifier, expectedState: state, idTokenExpected: true });
    const [certs, hosts] = await Promise.all([
      cp!.call('POST', '/api/v1/certs', { token: tokens.access_token, json: { csr } }),
      cp!.call('GET', '/api/v1/me/hosts', { token: tokens.access_token }),
    ]);
    const ms = performance.now() - t0;
    if (certs.status !== 201 || hosts.status !== 200) throw new Error(`baseline login: ${certs.status} ${hosts.status}`);
    await signingIn;
    await client.tokenRevocation(config, tokens.refresh_token!);
    return ms;
  } finally {
    await receiver.close();
  }
}

async function bareRenewal(config: client.Configuration, refreshToken: string, csr: string): Promise<{ ms: number; refreshToken: string }> {
  const t0 = performance.now();
  const tokens = await client.refreshTokenGrant(config, refreshToken);
  const certs = await cp!.call('POST', '/api/v1/certs', { token: tokens.access_token, json: { csr } });
  const hosts = await cp!.call('GET', '/api/v1/me/hosts', { token: tokens.access_token });
  if (certs.status !== 201 || hosts.status !== 200) throw new Error(`baseline renewal: ${certs.status} ${hosts.status}`);
  return { ms: performance.now() - t0, refreshToken: tokens.refresh_token! };
}

async function main(): Promise<void> {
  const { configDir } = await setup();
  const config = await discoverConsole(cp!.url, cp!.caPem);
  const { csr } = await makeCsr();
  progress(`warming up (1 login of each kind), then ${ROUNDS} rounds`);
  await companionLogin(configDir);
  await logout(configDir);
  await bareLogin(config, csr);

  const login: number[] = [];
  const loginBase: number[] = [];
  const renew: number[] = [];
  const renewBase: number[] = [];
  for (let i = 0; i < ROUNDS; i++) {
    login.push(await companionLogin(configDir));
    renew.push((await renewCertificate(configDir)).tookMs);
    await logout(configDir);
    loginBase.push(await bareLogin(config, csr));
  }
  // Baseline renewals on one login, as the agent would renew.
  const receiver = await loopbackReceiver();
  const verifier = client.randomPKCECodeVerifier();
  const state = client.randomState();
  const url = client.buildAuthorizationUrl(config, { redirect_uri: receiver.redirectUri, scope: SCOPE, code_challenge: await client.calculatePKCECodeChallenge(verifier), code_challenge_method: 'S256', state });
  const arrived = receiver.next();
  await signIn(url.href);
  let refresh = (await client.authorizationCodeGrant(config, await arrived, { pkceCodeVerifier: verifier, expectedState: state })).refresh_token!;
  await receiver.close();
  for (let i = 0; i < ROUNDS; i++) {
    const r = await bareRenewal(config, refresh, csr);
    renewBase.push(r.ms);
    refresh = r.refreshToken;
  }

  const row = (name: string, v: number[], base?: number[]): string[] => [name, fmt(median(v), 1), fmt(Math.min(...v), 1), fmt(Math.max(...v), 1), base ? `${fmt(median(v) / median(base), 2)}×` : ''];
  console.log('');
  console.log(table(['ms', 'median', 'min', 'max', 'vs baseline'], [
    row('login: redirect → contexts ready (companion)', login, loginBase),
    row('login: baseline (code exchange + cert + hosts, nothing written)', loginBase),
    row('renewal (companion)', renew, renewBase),
    row('renewal: baseline (refresh + cert + hosts, nothing written)', renewBase),
  ]));
  console.log('');
  // What the companion adds on top of the protocol is local: a key pair, ~15 atomic writes (fsync'd), keychain calls.
  console.log(table(['check', 'value', 'target', ''], ratioRows([
    { what: 'login redirect → contexts ready, s (median)', value: median(login) / 1000, op: '<=', target: 1 },
    { what: 'renewal, s (median)', value: median(renew) / 1000, op: '<=', target: 1 },
  ])));
}

main()
  .catch((error: Error) => {
    console.error(`bench: ${error.stack ?? error.message}`);
    process.exitCode = 1;
  })
  .finally(async () => {
    await browser?.close().catch(() => undefined);
    await session?.stop().catch(() => undefined);
    await keyring?.remove().catch(() => undefined);
    await cp?.stop({ remove: true }).catch(() => undefined);
  });
