// The Console's OAuth server for native apps through the real binary: discovery; the authorization code flow with
// PKCE and a loopback redirect on any port, driven by a real headless Chromium on the Console's sign-in page
// (Playwright), the tokens fetched by openid-client v6; the device flow; the access token as an API credential
// (who am I, a certificate for that user); refresh-token rotation, revocation, a disabled user; the sign-in
// page's CSRF guards; and GET /api/v1/me/hosts with an enrolled Defender.
import 'reflect-metadata'; // @peculiar/x509 (tsyringe) needs it loaded first
import { X509Certificate } from 'node:crypto';
import * as x509 from '@peculiar/x509';
import * as client from 'openid-client';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { enrollDefender, clientTls, mtlsCall, type EnrolledDefender } from '../support/console-defender-client.js';
import { startConsoleProcess, type ApiResponse, type ConsoleProcess } from '../support/console-process.js';
import { makeCsr } from '../support/csr.js';
import { CHROMIUM_ARGS } from '../support/companion-cli.js';
import { discoverConsole, exactRequest, loopbackReceiver, servedSpkiPin, type LoopbackReceiver } from '../support/oauth-client.js';
import { requireSystem } from '../support/system-check.js';

const PASSWORD = 'a-long-enough-password';
const SCOPE = 'openid offline_access drawbridge';
const FOURTEEN_DAYS_MS = 14 * 24 * 3600_000;

let cp: ConsoleProcess;
let admin: string;
let config: client.Configuration;
let browser: Browser;
let loopback: LoopbackReceiver;

/** A request with exactly these headers (a browser's form post, with or without its cookies). */
const rawCall = (method: string, path: string, headers: Record<string, string>, body?: string): Promise<ApiResponse<string>> => exactRequest(cp.url, cp.caPem, method, path, headers, body);

// Runs in the page (no DOM lib here: the tests' tsconfig is Node's).
const focusedId = (page: Page): Promise<string | undefined> => page.evaluate('document.activeElement?.id');

async function signIn(page: Page, username: string, password: string): Promise<void> {
  await page.getByLabel('User name').fill(username);
  await page.getByLabel('Password').fill(password);
  await page.getByRole('button', { name: 'Sign in' }).click();
}

/** The whole code + PKCE flow in a fresh browser context; resolves with the token response. */
async function browserLogin(username: string, opts: { scope?: string; receiver?: LoopbackReceiver } = {}) {
  const receiver = opts.receiver ?? loopback;
  const verifier = client.randomPKCECodeVerifier();
  const state = client.randomState();
  const url = client.buildAuthorizationUrl(config, {
    redirect_uri: receiver.redirectUri,
    scope: opts.scope ?? SCOPE,
    code_challenge: await client.calculatePKCECodeChallenge(verifier),
    code_challenge_method: 'S256',
    state,
  });
  const context = await browser.newContext();
  try {
    const page = await context.newPage();
    await page.goto(url.href);
    const arrived = receiver.next();
    await signIn(page, username, PASSWORD);
    const callback = await arrived;
    return await client.authorizationCodeGrant(config, callback, { pkceCodeVerifier: verifier, expectedState: state, idTokenExpected: true });
  } finally {
    await context.close();
  }
}

const me = (token: string) => cp.call('GET', '/api/v1/auth/me', { token });

const createUser = (name: string, groups: string[], role = 'user'): Promise<unknown> => cp.createUser(admin, { name, password: PASSWORD, role, groups });

beforeAll(async () => {
  await requireSystem(['chromium']);
  cp = await startConsoleProcess();
  admin = await cp.adminToken();
  await createUser('alice', ['devs', 'oncall']);
  await createUser('carol', ['devs']);
  await createUser('dave', []);
  config = await discoverConsole(cp.url, cp.caPem);
  loopback = await loopbackReceiver();
  browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: [...CHROMIUM_ARGS, `--ignore-certificate-errors-spki-list=${await servedSpkiPin(cp.port)}`] });
});

afterAll(async () => {
  await browser?.close();
  await loopback?.close();
  await cp?.stop({ remove: true });
});

describe('discovery', () => {
  it('serves the metadata at /oauth/.well-known/openid-configuration with the issuer <public URL>/oauth', async () => {
    const r = await cp.call('GET', '/oauth/.well-known/openid-configuration');
    expect(r.status, r.text).toBe(200);
    const issuer = `${cp.url}/oauth`;
    expect(r.body).toMatchObject({
      issuer,
      authorization_endpoint: `${issuer}/auth`,
      token_endpoint: `${issuer}/token`,
      device_authorization_endpoint: `${issuer}/device/auth`,
      revocation_endpoint: `${issuer}/token/revocation`,
      jwks_uri: `${issuer}/jwks`,
      code_challenge_methods_supported: ['S256'],
      response_types_supported: ['code'],
      scopes_supported: ['openid', 'offline_access', 'drawbridge'],
      grant_types_supported: expect.arrayContaining(['authorization_code', 'refresh_token', 'urn:ietf:params:oauth:grant-type:device_code']),
    });
    expect(r.body.registration_endpoint).toBeUndefined();
    expect(r.body.introspection_endpoint).toBeUndefined();
    // What openid-client found is the same document, checked against the issuer it was given.
    expect(config.serverMetadata().issuer).toBe(issuer);
  });
});

describe('authorization code + PKCE with a loopback redirect, in Chromium', () => {
  it('slows down guessing on the sign-in page as on the API: the sixth try in a row waits, even with the right password', async () => {
    await createUser('guessed', []);
    const url = client.buildAuthorizationUrl(config, { redirect_uri: loopback.redirectUri, scope: SCOPE, code_challenge: await client.calculatePKCECodeChallenge(client.randomPKCECodeVerifier()), code_challenge_method: 'S256' });
    const context = await browser.newContext();
    try {
      const page = await context.newPage();
      await page.goto(url.href);
      for (let i = 0; i < 5; i++) await signIn(page, 'guessed', `guess-${i}`);
      expect(await page.getByRole('alert').textContent()).toBe('Wrong user name or password.');
      await signIn(page, 'GUESSED', PASSWORD);
      expect(await page.getByRole('alert').textContent()).toBe("Too many failed logins for 'GUESSED': try again in 1 s.");
      // Every try is in the Console's audit, with the name typed, the address and how it ended; no password.
      const audit = await cp.call('GET', '/api/v1/console-audit?limit=6', { token: admin });
      const tries = audit.body.items.map((e: { route: string; target: { user: string }; status: number; actor: string | null; address: string }) => `${e.route} ${e.target.user} ${e.status} ${e.actor} ${e.address}`);
      expect(tries).toEqual(['sign-in page GUESSED 429 null 127.0.0.1', ...Array<string>(5).fill('sign-in page guessed 401 null 127.0.0.1')]);
      expect(audit.text).not.toContain('guess-');
    } finally {
      await context.close();
    }
  });

  it('shows which app asks, errors inline, works by keyboard, and redirects to the loopback port with a code', async () => {
    const verifier = client.randomPKCECodeVerifier();
    const state = client.randomState();
    const url = client.buildAuthorizationUrl(config, { redirect_uri: loopback.redirectUri, scope: SCOPE, code_challenge: await client.calculatePKCECodeChallenge(verifier), code_challenge_method: 'S256', state });
    const context: BrowserContext = await browser.newContext();
    try {
      const page = await context.newPage();
      const first = await page.goto(url.href);
      expect(first!.url()).toMatch(new RegExp(`^${cp.url}/oauth/interaction/[\\w-]+$`));
      expect(first!.headers()['content-security-policy']).toContain("frame-ancestors 'none'");
      expect(await page.getByRole('heading', { level: 1 }).textContent()).toBe('Sign in to Drawbridge');
      expect(await page.locator('#asking').textContent()).toBe('Drawbridge CLI wants to get Docker certificates for you.');
      expect(await focusedId(page)).toBe('username');

      // Wrong password: the same page, the error inline and announced, the user name kept, focus on the password.
      await signIn(page, 'alice', 'not-the-password');
      expect(await page.getByRole('alert').textContent()).toBe('Wrong user name or password.');
      expect(await page.getByLabel('User name').inputValue()).toBe('alice');
      expect(await page.getByLabel('Password').getAttribute('aria-invalid')).toBe('true');
      expect(await page.getByLabel('Password').getAttribute('aria-describedby')).toBe('login-error');
      expect(await focusedId(page)).toBe('password');
      expect(await page.getByLabel('Password').inputValue()).toBe('');

      // Keyboard only: type the password into the focused field, Enter submits.
      const arrived = loopback.next();
      await page.keyboard.type(PASSWORD);
      await page.keyboard.press('Enter');
      const callback = await arrived;
      expect(callback.origin).toBe(new URL(loopback.redirectUri).origin);
      expect(callback.searchParams.get('state')).toBe(state);
      expect(callback.searchParams.get('iss')).toBe(`${cp.url}/oauth`);

      const tokens = await client.authorizationCodeGrant(config, callback, { pkceCodeVerifier: verifier, expectedState: state, idTokenExpected: true });
      expect(tokens.token_type.toLowerCase()).toBe('bearer');
      // offline_access is dropped without prompt=consent (OpenID Core §11); the drawbridge scope brings a refresh token anyway.
      expect(tokens.refresh_token).toEqual(expect.any(String));
      expect(tokens.scope?.split(' ').sort()).toEqual(['drawbridge', 'openid']);
      expect(tokens.expiresIn()).toBeLessThanOrEqual(15 * 60);
      expect(tokens.claims()).toMatchObject({ sub: 'alice', iss: `${cp.url}/oauth`, aud: 'drawbridge-cli' });
      expect((await me(tokens.access_token)).status).toBe(200);
      // A code is good once; a second use means it leaked, and ends that login (oidc-provider revokes the grant).
      await expect(client.authorizationCodeGrant(config, callback, { pkceCodeVerifier: verifier, expectedState: state })).rejects.toMatchObject({ error: 'invalid_grant' });
      expect((await me(tokens.access_token)).status).toBe(401);
    } finally {
      await context.close();
    }
  });

  it('accepts any port on 127.0.0.1 and [::1], and nothing else', async () => {
    const ask = (redirectUri: string, extra: Record<string, string> = {}) => {
      const q = new URLSearchParams({ client_id: 'drawbridge-cli', response_type: 'code', scope: SCOPE, redirect_uri: redirectUri, code_challenge: 'E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM', code_challenge_method: 'S256', ...extra });
      return rawCall('GET', `/oauth/auth?${q}`, { accept: 'text/html' });
    };
    for (const uri of ['http://127.0.0.1:1/callback', 'http://127.0.0.1:65535/callback', 'http://[::1]:49152/callback', 'http://127.0.0.1/callback']) {
      const r = await ask(uri);
      expect(r.status, `${uri}: ${r.text}`).toBe(303);
      expect(r.headers.location).toMatch(/^\/oauth\/interaction\/[\w-]+$/);
    }
    for (const uri of ['http://127.0.0.1:5000/other', 'https://127.0.0.1:5000/callback', 'http://evil.example:5000/callback', 'http://127.0.0.2:5000/callback']) {
      const r = await ask(uri);
      expect(r.status, uri).toBe(400);
      expect(r.text).toContain('redirect_uri did not match any of the client&#39;s registered redirect_uris');
    }
    // PKCE is required: without a challenge the app gets the error at its own redirect URI.
    const q = new URLSearchParams({ client_id: 'drawbridge-cli', response_type: 'code', scope: SCOPE, redirect_uri: 'http://127.0.0.1:5000/callback' });
    const noPkce = await rawCall('GET', `/oauth/auth?${q}`, {});
    expect(noPkce.status).toBe(303);
    const back = new URL(noPkce.headers.location as string);
    expect(back.searchParams.get('error')).toBe('invalid_request');
    expect(back.searchParams.get('error_description')).toMatch(/PKCE/);
  });

  it('completes through an IPv6 loopback receiver too', async () => {
    let v6: LoopbackReceiver;
    try {
      v6 = await loopbackReceiver('::1');
    } catch {
      return; // no IPv6 loopback on this machine: nothing to show
    }
    try {
      const tokens = await browserLogin('alice', { receiver: v6 });
      expect((await me(tokens.access_token)).body.name).toBe('alice');
    } finally {
      await v6.close();
    }
  });
});

describe('the access token is a Console API credential', () => {
  it('authenticates alice: who am I, with the login (grant) end as the session end', async () => {
    const before = Date.now();
    const tokens = await browserLogin('alice');
    const r = await me(tokens.access_token);
    expect(r.status, r.text).toBe(200);
    expect(r.body).toMatchObject({ name: 'alice', role: 'user', groups: ['devs', 'oncall'] });
    const ends = Date.parse(r.body.sessionExpiresAt);
    expect(ends).toBeGreaterThan(before + FOURTEEN_DAYS_MS - 60_000);
    expect(ends).toBeLessThanOrEqual(Date.now() + FOURTEEN_DAYS_MS + 1000);
  });

  it('gets a certificate whose subject is the user, whatever the CSR says', async () => {
    const tokens = await browserLogin('alice');
    const { csr } = await makeCsr('CN=mallory, OU=admins');
    const r = await cp.call('POST', '/api/v1/certs', { token: tokens.access_token, json: { csr } });
    expect(r.status, r.text).toBe(201);
    const cert = new x509.X509Certificate(r.body.cert);
    expect(cert.subjectName.getField('CN')).toEqual(['alice']);
    expect(cert.subjectName.getField('OU').sort()).toEqual(['devs', 'oncall']);
    // Bounded by --cert-max-lifetime (1 day by default), well inside the login's 14 days.
    expect(Date.parse(r.body.notAfter)).toBeLessThanOrEqual(Date.now() + 24 * 3600_000 + 5000);
  });

  it('refuses a token without the drawbridge scope, and a token that is not one', async () => {
    const tokens = await browserLogin('alice', { scope: 'openid' });
    expect(tokens.refresh_token).toBeUndefined(); // no offline_access asked
    expect((await me(tokens.access_token)).status).toBe(401);
    // It is still an OpenID access token: userinfo answers (just the subject: no drawbridge scope).
    const info = await client.fetchUserInfo(config, tokens.access_token, 'alice');
    expect(info).toEqual({ sub: 'alice' });
    expect((await me('not-a-token-at-all')).status).toBe(401);
    expect((await me(`${tokens.access_token}x`)).status).toBe(401);
  });
});

describe('refresh, rotation and revocation', () => {
  it('refreshes to a new access token and a new refresh token; reusing the old one ends the whole login', async () => {
    const first = await browserLogin('alice');
    const second = await client.refreshTokenGrant(config, first.refresh_token!);
    expect(second.access_token).not.toBe(first.access_token);
    expect(second.refresh_token).toEqual(expect.any(String));
    expect(second.refresh_token).not.toBe(first.refresh_token);
    expect((await me(second.access_token)).body.name).toBe('alice');
    // Same login: the session end does not move.
    expect((await me(second.access_token)).body.sessionExpiresAt).toBe((await me(first.access_token)).body.sessionExpiresAt);

    // A rotated refresh token used again means it leaked: oidc-provider revokes the grant and all its tokens.
    await expect(client.refreshTokenGrant(config, first.refresh_token!)).rejects.toMatchObject({ error: 'invalid_grant' });
    await expect(client.refreshTokenGrant(config, second.refresh_token!)).rejects.toMatchObject({ error: 'invalid_grant' });
    expect((await me(second.access_token)).status).toBe(401);
  });

  it('revoking the refresh token (logout) ends the refresh token and the access tokens of that login only', async () => {
    const mine = await browserLogin('alice');
    const other = await browserLogin('alice');
    await client.tokenRevocation(config, mine.refresh_token!, { token_type_hint: 'refresh_token' });
    await expect(client.refreshTokenGrant(config, mine.refresh_token!)).rejects.toMatchObject({ error: 'invalid_grant' });
    expect((await me(mine.access_token)).status).toBe(401);
    // Another login of the same user is untouched.
    expect((await me(other.access_token)).status).toBe(200);
    expect((await client.refreshTokenGrant(config, other.refresh_token!)).access_token).toEqual(expect.any(String));
    // Revoking again (or a token that is not one) is still a success, as RFC 7009 wants.
    await client.tokenRevocation(config, mine.refresh_token!);
  });

  it("changing a user's groups ends their OAuth logins (the groups are what their certificates carry)", async () => {
    await createUser('erin', []);
    const tokens = await browserLogin('erin');
    expect((await me(tokens.access_token)).body.groups).toEqual([]);
    const r = await cp.call('PATCH', '/api/v1/users/erin', { token: admin, json: { groups: ['ops'] } });
    expect(r.status, r.text).toBe(200);
    expect((await me(tokens.access_token)).status).toBe(401);
    await expect(client.refreshTokenGrant(config, tokens.refresh_token!)).rejects.toMatchObject({ error: 'invalid_grant' });
    const again = await browserLogin('erin');
    expect((await me(again.access_token)).body.groups).toEqual(['ops']);
  });

  it("revoking a user's certificates ends their OAuth logins (the companion must not renew what an admin revoked)", async () => {
    await createUser('rita', []);
    const tokens = await browserLogin('rita');
    const r = await cp.call('POST', '/api/v1/users/rita/revoke-certs', { token: admin });
    expect(r.status, r.text).toBe(200);
    expect((await me(tokens.access_token)).status).toBe(401);
    await expect(client.refreshTokenGrant(config, tokens.refresh_token!)).rejects.toMatchObject({ error: 'invalid_grant' });
  });

  it("stops a disabled user's tokens, API and refresh alike", async () => {
    const tokens = await browserLogin('carol');
    expect((await me(tokens.access_token)).status).toBe(200);
    const r = await cp.call('PATCH', '/api/v1/users/carol', { token: admin, json: { disabled: true } });
    expect(r.status, r.text).toBe(200);
    expect((await me(tokens.access_token)).status).toBe(401);
    await expect(client.refreshTokenGrant(config, tokens.refresh_token!)).rejects.toMatchObject({ error: 'invalid_grant' });
  });
});

describe('the device flow', () => {
  it('polls to tokens once the user enters the code in the browser and signs in', async () => {
    const response = await client.initiateDeviceAuthorization(config, { scope: SCOPE });
    expect(response.verification_uri).toBe(`${cp.url}/oauth/device`);
    expect(response.user_code).toMatch(/^[BCDFGHJKLMNPQRSTVWXZ]{4}-[BCDFGHJKLMNPQRSTVWXZ]{4}$/);
    const polling = client.pollDeviceAuthorizationGrant(config, response);
    const context = await browser.newContext();
    try {
      const page = await context.newPage();
      await page.goto(response.verification_uri);
      expect(await focusedId(page)).toBe('user_code');
      // A wrong code first: said inline, on the same page.
      await page.getByLabel('Code shown by the app').fill('BCDF-GHJK');
      await page.getByRole('button', { name: 'Continue' }).click();
      expect(await page.getByRole('alert').textContent()).toBe('There is no such code. Check it against the app and try again.');
      await page.getByLabel('Code shown by the app').fill(response.user_code);
      await page.getByRole('button', { name: 'Continue' }).click();
      // The confirmation names the app and shows the code to compare.
      expect(await page.locator('#asking').textContent()).toBe('Drawbridge CLI wants to get Docker certificates for you.');
      expect(await page.locator('.code').textContent()).toBe(response.user_code);
      await page.getByRole('button', { name: 'Continue' }).click();
      // The same sign-in page as the code flow.
      expect(await page.getByRole('heading', { level: 1 }).textContent()).toBe('Sign in to Drawbridge');
      await signIn(page, 'dave', PASSWORD);
      expect(await page.getByRole('heading', { level: 1 }).textContent()).toBe('You are signed in');
    } finally {
      await context.close();
    }
    const tokens = await polling;
    expect(tokens.refresh_token).toEqual(expect.any(String));
    expect((await me(tokens.access_token)).body).toMatchObject({ name: 'dave', groups: [] });
  }, 60_000);
});

describe('the sign-in page', () => {
  it('refuses a form post without the interaction cookie, or from another site', async () => {
    const start = await rawCall('GET', `/oauth/auth?${new URLSearchParams({ client_id: 'drawbridge-cli', response_type: 'code', scope: SCOPE, redirect_uri: loopback.redirectUri, code_challenge: 'E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM', code_challenge_method: 'S256' })}`, {});
    const interaction = start.headers.location as string;
    const cookies = (start.headers['set-cookie'] as string[]).map((c) => c.split(';')[0]!).join('; ');
    const form = { 'content-type': 'application/x-www-form-urlencoded' };
    const body = new URLSearchParams({ username: 'alice', password: PASSWORD }).toString();

    const page = await rawCall('GET', interaction, { cookie: cookies });
    expect(page.status).toBe(200);
    expect(page.text).toContain('<label for="password">Password</label>');

    const noCookie = await rawCall('POST', `${interaction}/login`, form, body);
    expect(noCookie.status).toBe(400);
    expect(noCookie.text).toContain('This sign-in has expired or was started in another browser.');

    const foreign = await rawCall('POST', `${interaction}/login`, { ...form, cookie: cookies, origin: 'https://evil.example' }, body);
    expect(foreign.status).toBe(403);

    // Another interaction's uid with this browser's cookie: not this sign-in.
    const wrongUid = await rawCall('POST', '/oauth/interaction/AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA/login', { ...form, cookie: cookies }, body);
    expect(wrongUid.status).toBe(400);

    const ok = await rawCall('POST', `${interaction}/login`, { ...form, cookie: cookies, origin: cp.url }, body);
    expect(ok.status).toBe(303);
    expect(ok.headers.location).toMatch(/\/oauth\/auth\/[\w-]+$/);
  });

  it('lets the user cancel: the app gets access_denied', async () => {
    const context = await browser.newContext();
    try {
      const state = client.randomState();
      const url = client.buildAuthorizationUrl(config, { redirect_uri: loopback.redirectUri, scope: SCOPE, code_challenge: await client.calculatePKCECodeChallenge(client.randomPKCECodeVerifier()), code_challenge_method: 'S256', state });
      const page = await context.newPage();
      await page.goto(url.href);
      const arrived = loopback.next();
      await page.getByRole('button', { name: 'Cancel' }).click();
      const back = await arrived;
      expect(back.searchParams.get('error')).toBe('access_denied');
      expect(back.searchParams.get('state')).toBe(state);
    } finally {
      await context.close();
    }
  });
});

describe('GET /api/v1/me/hosts', () => {
  let devA: EnrolledDefender;

  beforeAll(async () => {
    const joinToken = async () => (await cp.call('POST', '/api/v1/defenders/join-tokens', { token: admin, json: {} })).body.token as string;
    const a = await enrollDefender(cp, await joinToken(), 'dev-a');
    const b = await enrollDefender(cp, await joinToken(), 'prod-b', { listener: { type: 'tcp', address: '10.1.2.3:2376' } });
    const c = await enrollDefender(cp, await joinToken(), 'dev-sock', { listener: { type: 'unix', path: '/run/drawbridge.sock' } });
    if (!a.ok || !b.ok || !c.ok) throw new Error('enrolment failed');
    devA = a.defender;
    const rules = [
      'rules:',
      '  - {name: no-exec, effect: deny, groups: [devs], actions: [container_exec_*]}',
      '  - {name: devs-on-dev, effect: allow, groups: [devs], hosts: [dev-*]}',
      '  - {name: dave-pings-prod, effect: allow, users: [dave], hosts: [prod-*], actions: [docker_ping]}',
    ].join('\n');
    const r = await cp.call('PUT', '/api/v1/rules/import', { token: admin, text: `${rules}\n` });
    expect(r.status, r.text).toBe(200);
  });

  it('lists the hosts alice can reach, with DOCKER_HOST, the listener, connected, and what she may do', async () => {
    const tokens = await browserLogin('alice');
    const r = await cp.call('GET', '/api/v1/me/hosts', { token: tokens.access_token });
    expect(r.status, r.text).toBe(200);
    expect(r.body.identity).toEqual({ user: 'alice', groups: ['devs', 'oncall'] });
    expect(r.body.items.map((h: { hostName: string }) => h.hostName)).toEqual(['dev-a', 'dev-sock']);
    const [a, sock] = r.body.items;
    expect(a).toMatchObject({ hostName: 'dev-a', dockerHost: 'tcp://127.0.0.1:9998', listener: 'tcp', connected: false, summary: 'can run containers, list containers, build images, pull images, push images; cannot exec' });
    expect(a.permissions.container_create).toEqual({ allowed: true, rule: 'devs-on-dev' });
    expect(a.permissions.container_exec_create).toEqual({ allowed: false, rule: 'no-exec' });
    expect(sock).toMatchObject({ dockerHost: 'unix:///run/drawbridge.sock', listener: 'unix' });

    // A heartbeat from the Defender: connected.
    const hb = await mtlsCall(cp.url, clientTls(devA), 'POST', '/api/v1/defenders/heartbeat', { json: { version: 'test', policyVersion: 1, listener: { type: 'tcp', address: '0.0.0.0:9998' }, auditBacklog: 0 } });
    expect(hb.status, hb.text).toBe(204);
    const after = await cp.call('GET', '/api/v1/me/hosts', { token: tokens.access_token });
    expect(after.body.items[0]).toMatchObject({ hostName: 'dev-a', connected: true });
  });

  it('answers with a session token as well; a host allowing one odd action is reachable, with an honest summary', async () => {
    const token = await cp.login('dave', PASSWORD);
    const r = await cp.call('GET', '/api/v1/me/hosts', { token });
    expect(r.status, r.text).toBe(200);
    expect(r.body.items).toEqual([
      expect.objectContaining({ hostName: 'prod-b', dockerHost: 'tcp://10.1.2.3:2376', summary: 'cannot run containers, list containers, exec, build images, pull images, push images (other actions only)' }),
    ]);
    expect((await cp.call('GET', '/api/v1/me/hosts')).status).toBe(401);
  });
});
