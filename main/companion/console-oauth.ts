/**
 * OAuth 2.0 for native apps against the Console (openid-client v6; console/oauth/README.md): discovery at
 * `<console>/oauth`, authorization code + PKCE (S256) with a loopback redirect, the device grant, refresh-token
 * rotation and revocation, for the built-in public client `drawbridge-cli`.
 *
 * - Every request goes through the injected Console fetch (its CA, never the system store once known).
 * - Waiting for the user (browser or device code) ends on the caller's AbortSignal: Ctrl-C or the timeout.
 * - `invalid_grant` on refresh means the login is over (revoked, user changed or disabled, expired):
 *   LOGIN_REQUIRED with the command to run. A rotated refresh token must be stored before anything else happens.
 */
import * as client from 'openid-client';
import { CompanionError, loginAgainMessage } from './companion-errors.js';
import { consoleNetworkError, type ConsoleFetch } from './console-https.js';
import { StartedTwiceError, startLoopbackRedirect, type ArrivedRedirect } from './loopback-redirect.js';

export const CLI_CLIENT_ID = 'drawbridge-cli';
export const LOGIN_SCOPE = 'openid offline_access drawbridge';

export interface Tokens {
  readonly accessToken: string;
  readonly refreshToken: string;
  /** Access token lifetime in seconds. */
  readonly expiresIn: number;
}

export type OAuthConfig = client.Configuration;

/** Maps openid-client's failures onto the companion's (network, refused grant, Console error). */
function oauthError(consoleUrl: string, error: unknown, doing: string): CompanionError {
  if (error instanceof CompanionError) return error;
  const cause = (error as { cause?: unknown }).cause;
  if (cause instanceof CompanionError) return cause;
  if ((error as Error).name === 'AbortError' || (error as Error).name === 'TimeoutError') return new CompanionError('CANCELLED', `${doing}: cancelled`);
  const oauth = (error as { error?: unknown }).error;
  if (oauth === 'invalid_grant') return new CompanionError('LOGIN_REQUIRED', loginAgainMessage(consoleUrl, 'your Drawbridge login has ended (revoked, expired or your account changed)'));
  if (oauth === 'access_denied') return new CompanionError('LOGIN_REFUSED', `${doing}: sign-in was cancelled or refused in the browser; run drawbridge login ${consoleUrl} to try again`);
  if (oauth === 'expired_token') return new CompanionError('TIMED_OUT', `${doing}: the code expired before it was entered; run drawbridge login ${consoleUrl} --device again`);
  if (typeof oauth === 'string') return new CompanionError('CONSOLE_ERROR', `${doing}: the Console said ${oauth}${(error as Error).message ? ` (${(error as Error).message})` : ''}`);
  if ((error as NodeJS.ErrnoException).code && /ECONN|ENOTFOUND|EAI_AGAIN|EHOSTUNREACH|ETIMEDOUT/.test(String((error as NodeJS.ErrnoException).code))) return consoleNetworkError(consoleUrl, error);
  return new CompanionError('CONSOLE_ERROR', `${doing}: ${(error as Error).message}`);
}

function tokensOf(r: client.TokenEndpointResponse & client.TokenEndpointResponseHelpers, consoleUrl: string): Tokens {
  if (!r.refresh_token) throw new CompanionError('CONSOLE_ERROR', `the Console at ${consoleUrl} gave no refresh token; is it a Drawbridge Console?`);
  return { accessToken: r.access_token, refreshToken: r.refresh_token, expiresIn: r.expiresIn() ?? 0 };
}

/** openid-client's configuration from the Console's discovery document. */
export async function discoverConsole(consoleUrl: string, fetch: ConsoleFetch): Promise<OAuthConfig> {
  try {
    return await client.discovery(new URL(`${consoleUrl}/oauth`), CLI_CLIENT_ID, undefined, client.None(), { [client.customFetch]: fetch as client.CustomFetch, timeout: 30 });
  } catch (error) {
    throw oauthError(consoleUrl, error, 'discovery');
  }
}

/** The same configuration from discovery metadata kept at login (no discovery round trip on every renewal). */
export function consoleOAuthConfig(metadata: client.ServerMetadata, fetch: ConsoleFetch): OAuthConfig {
  const config = new client.Configuration(metadata, CLI_CLIENT_ID, undefined, client.None());
  config[client.customFetch] = fetch as client.CustomFetch;
  config.timeout = 30;
  return config;
}

export interface BrowserLoginOptions {
  readonly signal: AbortSignal;
  /** Opens the authorization URL; resolves to whether a browser was started. */
  readonly openBrowser: (url: string) => Promise<boolean>;
  /** Told the URL (always, so a user without a browser can copy it) and whether a browser opened. */
  readonly onUrl: (url: string, opened: boolean) => void;
}

/** Code + PKCE through the system browser; the redirect is handed back unanswered so the caller can finish first. */
export async function loginWithBrowser(config: OAuthConfig, consoleUrl: string, opts: BrowserLoginOptions): Promise<{ tokens: Tokens; redirect: ArrivedRedirect }> {
  const state = client.randomState();
  const verifier = client.randomPKCECodeVerifier();
  const receiver = await startLoopbackRedirect(state);
  try {
    const url = client.buildAuthorizationUrl(config, {
      redirect_uri: receiver.redirectUri,
      scope: LOGIN_SCOPE,
      code_challenge: await client.calculatePKCECodeChallenge(verifier),
      code_challenge_method: 'S256',
      state,
    });
    // The browser gets the receiver's /start, which holds no secret, never this URL (loopback-redirect.ts).
    receiver.begin(url.href);
    opts.onUrl(receiver.startUrl, await opts.openBrowser(receiver.startUrl));
    const redirect = await receiver.wait(opts.signal).catch((reason: unknown) => {
      if (reason instanceof StartedTwiceError) throw new CompanionError('LOGIN_REFUSED', `${reason.message}; run the login again`);
      throw reason instanceof CompanionError ? reason : new CompanionError('CANCELLED', 'login cancelled');
    });
    try {
      const r = await client.authorizationCodeGrant(config, redirect.url, { pkceCodeVerifier: verifier, expectedState: state, idTokenExpected: true });
      return { tokens: tokensOf(r, consoleUrl), redirect };
    } catch (error) {
      const e = oauthError(consoleUrl, error, 'login');
      redirect.respond({ ok: false, title: 'Sign-in did not finish', text: e.message });
      throw e;
    }
  } finally {
    // The held browser response keeps its socket; close() only stops new ones (the caller answers it).
    void receiver.close();
  }
}

export interface DeviceLoginOptions {
  readonly signal: AbortSignal;
  /** Told the code and where to enter it. */
  readonly onCode: (code: { userCode: string; verificationUri: string; verificationUriComplete?: string; expiresIn: number }) => void;
}

/** The device grant: shows a code, polls until the user confirmed it in a browser anywhere. */
export async function loginWithDevice(config: OAuthConfig, consoleUrl: string, opts: DeviceLoginOptions): Promise<Tokens> {
  try {
    const response = await client.initiateDeviceAuthorization(config, { scope: LOGIN_SCOPE });
    opts.onCode({
      userCode: response.user_code,
      verificationUri: response.verification_uri,
      ...(response.verification_uri_complete ? { verificationUriComplete: response.verification_uri_complete } : {}),
      expiresIn: response.expires_in,
    });
    return tokensOf(await client.pollDeviceAuthorizationGrant(config, response, undefined, { signal: opts.signal }), consoleUrl);
  } catch (error) {
    if (opts.signal.aborted) throw opts.signal.reason instanceof CompanionError ? opts.signal.reason : new CompanionError('CANCELLED', 'login cancelled');
    throw oauthError(consoleUrl, error, 'device login');
  }
}

/** A new access token and a new (rotated) refresh token. */
export async function refreshTokens(config: OAuthConfig, consoleUrl: string, refreshToken: string): Promise<Tokens> {
  try {
    return tokensOf(await client.refreshTokenGrant(config, refreshToken), consoleUrl);
  } catch (error) {
    throw oauthError(consoleUrl, error, 'refresh');
  }
}

/** Ends the login at the Console (RFC 7009): the refresh token and every access token of that login. */
export async function revokeLogin(config: OAuthConfig, consoleUrl: string, refreshToken: string): Promise<void> {
  try {
    await client.tokenRevocation(config, refreshToken, { token_type_hint: 'refresh_token' });
  } catch (error) {
    throw oauthError(consoleUrl, error, 'logout');
  }
}
