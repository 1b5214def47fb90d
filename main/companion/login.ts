/**
 * `login`: from a Console URL to ready docker contexts.
 *
 * - The keychain is checked first: without one (and without the explicit file flag) the user learns it before
 *   opening a browser, not after.
 * - The Console is verified (--ca / --pin / system store) before any OAuth request; its CA is remembered, and a
 *   new login to the same Console trusts it again without the flags.
 * - Browser (code + PKCE, loopback) or device grant; waiting ends on the caller's signal (Ctrl-C, timeout) with
 *   nothing written. Once the tokens are in, enrolment runs to the end: key pair here, CSR → certificate,
 *   hosts → contexts and `{ca,cert,key}.pem`, secrets → keychain, then the state file last (a half-done login has
 *   no state, so the next login simply starts over).
 * - The browser tab is answered when the contexts are ready, or with what went wrong.
 * - One Console per docker config dir: a login to another one asks for logout first. Logging in again to the
 *   same Console replaces the old login, which is revoked at the Console.
 */
import { stat } from 'node:fs/promises';
import { CompanionError } from './companion-errors.js';
import { consoleApi } from './console-api.js';
import { consoleFetch, establishConsoleTrust } from './console-https.js';
import { discoverConsole, loginWithBrowser, loginWithDevice, revokeLogin, type BrowserLoginOptions, type DeviceLoginOptions, type Tokens } from './console-oauth.js';
import { describeCertificate, generateClientKey } from './client-key.js';
import { readState, stateDirOf, withStateLock, writeState, type CompanionState, type HostEntry } from './companion-state.js';
import { materialiseHosts } from './materialise-hosts.js';
import { openStateSecrets, type SecretStoreChoice } from './console-session.js';
import { canonicalConsoleUrl } from './secret-store.js';

export interface LoginOptions extends SecretStoreChoice {
  readonly consoleUrl: string;
  readonly configDir: string;
  readonly ca?: string;
  readonly pin?: string;
  readonly signal: AbortSignal;
  /** Browser login (default) or the device grant. */
  readonly flow: ({ kind: 'browser' } & Omit<BrowserLoginOptions, 'signal'>) | ({ kind: 'device' } & Omit<DeviceLoginOptions, 'signal'>);
}

export interface LoginResult {
  readonly console: string;
  readonly user: string;
  readonly groups: readonly string[];
  readonly secretBackend: 'keychain' | 'file';
  readonly cert: { readonly serial: string; readonly notAfter: string };
  readonly hosts: readonly HostEntry[];
  /** Browser flow: from the redirect arriving on the loopback port to the contexts being ready (ms). */
  readonly redirectToReadyMs?: number;
}

export async function login(opts: LoginOptions): Promise<LoginResult> {
  let consoleUrl: string;
  try {
    consoleUrl = canonicalConsoleUrl(opts.consoleUrl);
  } catch {
    throw new CompanionError('USAGE', `not a Console URL: ${opts.consoleUrl} (expected https://host:port)`);
  }
  if (!consoleUrl.startsWith('https://')) throw new CompanionError('USAGE', `the Console is reached over https: ${consoleUrl}`);
  const previous = await readState(opts.configDir);
  if (previous && previous.console !== consoleUrl) {
    throw new CompanionError('USAGE', `already logged in to ${previous.console} for this docker config; run drawbridge logout first`);
  }
  const configDirExisted = previous?.configDirExisted ?? (await stat(opts.configDir).then(() => true, () => false));
  const secrets = await openStateSecrets(opts.configDir, opts);
  // Logging in again to the same Console trusts the CA remembered from before unless told otherwise.
  const ca = opts.ca || opts.pin ? await establishConsoleTrust(consoleUrl, { ...(opts.ca ? { ca: opts.ca } : {}), ...(opts.pin ? { pin: opts.pin } : {}) }) : previous?.consoleCa;
  const fetch = consoleFetch(consoleUrl, ca);
  const config = await discoverConsole(consoleUrl, fetch);

  let tokens: Tokens;
  let redirect: Awaited<ReturnType<typeof loginWithBrowser>>['redirect'] | undefined;
  if (opts.flow.kind === 'browser') {
    ({ tokens, redirect } = await loginWithBrowser(config, consoleUrl, { ...opts.flow, signal: opts.signal }));
  } else {
    tokens = await loginWithDevice(config, consoleUrl, { ...opts.flow, signal: opts.signal });
  }

  try {
    const result = await withStateLock(opts.configDir, async () => {
      const api = consoleApi(consoleUrl, fetch, tokens.accessToken);
      const [me, key] = await Promise.all([api.me(), generateClientKey()]);
      const [issued, hosts] = await Promise.all([api.issueCertificate(key.csr), api.myHosts()]);
      const tls = { ca: issued.ca, cert: issued.cert, key: key.key };
      const entries = await materialiseHosts({ configDir: opts.configDir, stateDir: stateDirOf(opts.configDir), console: consoleUrl, hosts, tls });
      const oldRefresh = previous ? await secrets.get(consoleUrl, 'refresh-token').catch(() => null) : null;
      await secrets.set(consoleUrl, 'refresh-token', tokens.refreshToken);
      await secrets.set(consoleUrl, 'private-key', key.key);
      const cert = describeCertificate(issued.cert);
      const state: CompanionState = {
        version: 1,
        console: consoleUrl,
        ...(ca ? { consoleCa: ca } : {}),
        oauthServer: { ...config.serverMetadata() },
        user: me.name,
        groups: me.groups,
        secretBackend: secrets.backend,
        cert: { pem: issued.cert, ca: issued.ca, ...cert, receivedAt: new Date().toISOString() },
        loginExpiresAt: me.sessionExpiresAt,
        session: { state: 'active' },
        loggedInAt: new Date().toISOString(),
        renewedAt: null,
        lastRenewalError: null,
        hosts: entries,
        configDirExisted,
        previousContext: previous?.previousContext ?? null,
      };
      await writeState(opts.configDir, state);
      if (oldRefresh && oldRefresh !== tokens.refreshToken) await revokeLogin(config, consoleUrl, oldRefresh).catch(() => undefined); // the replaced login
      return { console: consoleUrl, user: me.name, groups: me.groups, secretBackend: secrets.backend, cert: { serial: cert.serial, notAfter: cert.notAfter }, hosts: entries };
    });
    const ready = performance.now();
    redirect?.respond({ ok: true, title: 'Signed in to Drawbridge', text: `Signed in as ${result.user}. Your docker contexts are ready (${result.hosts.filter((h) => h.context).length} host(s)).` });
    return redirect ? { ...result, redirectToReadyMs: ready - redirect.at } : result;
  } catch (error) {
    redirect?.respond({ ok: false, title: 'Sign-in did not finish', text: `${(error as Error).message}` });
    throw error;
  }
}
