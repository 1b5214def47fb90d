/**
 * A logged-in companion talking to its Console: the secret store the login used, the Console's fetch (trusting
 * the CA remembered at login), openid-client's configuration, and API calls with a fresh access token.
 *
 * - Access tokens are not kept: each use refreshes under the state lock and stores the rotated refresh token at
 *   once, before the token is used (a crash after the rotation must not leave the old, now dead, token behind).
 * - When the Console says the login is over, the state becomes `login-required` with the reason, so `status`
 *   and the desktop app can show "log in again" without asking the Console.
 */
import { CompanionError, loginAgainMessage } from './companion-errors.js';
import { consoleApi, type ConsoleApi } from './console-api.js';
import { consoleFetch, type ConsoleFetch } from './console-https.js';
import type { ServerMetadata } from 'openid-client';
import { consoleOAuthConfig, discoverConsole, refreshTokens, type OAuthConfig } from './console-oauth.js';
import { readState, requireState, stateDirOf, withStateLock, writeState, type CompanionState } from './companion-state.js';
import { FileSecretStore, openSecretStore, type SecretStore } from './secret-store.js';

export interface SecretStoreChoice {
  /** Files (0600) when no keychain is reachable: only on the user's explicit flag. */
  readonly allowFileFallback?: boolean;
  /** Keychain service name (tests; default `drawbridge`). */
  readonly service?: string;
  /** The keychain worked for this login already: no probe. */
  readonly knownReachable?: boolean;
}

export function openStateSecrets(configDir: string, choice: SecretStoreChoice): Promise<SecretStore> {
  return openSecretStore({
    stateDir: stateDirOf(configDir),
    allowFileFallback: choice.allowFileFallback === true,
    knownReachable: choice.knownReachable === true,
    ...(choice.service ? { service: choice.service } : {}),
  });
}

export interface ConsoleSession {
  readonly state: CompanionState;
  readonly fetch: ConsoleFetch;
  readonly secrets: SecretStore;
  oauth(): Promise<OAuthConfig>;
}

export async function openConsoleSession(configDir: string, service?: string): Promise<ConsoleSession> {
  const state = await requireState(configDir);
  // A login that used files keeps using them (even if a keychain appeared since); a keychain login never
  // silently falls back to files.
  const secrets =
    state.secretBackend === 'file'
      ? new FileSecretStore({ stateDir: stateDirOf(configDir), allowFileFallback: true })
      : await openStateSecrets(configDir, { knownReachable: true, ...(service ? { service } : {}) });
  const fetch = consoleFetch(state.console, state.consoleCa);
  let config: Promise<OAuthConfig> | undefined;
  const known = state.oauthServer ? consoleOAuthConfig(state.oauthServer as ServerMetadata, fetch) : undefined;
  return { state, fetch, secrets, oauth: () => (config ??= known ? Promise.resolve(known) : discoverConsole(state.console, fetch)) };
}

/** Records that the login is over (what `status` shows), keeping everything else. */
export async function markLoginRequired(configDir: string, reason: string): Promise<void> {
  const state = await readState(configDir);
  if (!state || state.session.state === 'login-required') return;
  await writeState(configDir, { ...state, session: { state: 'login-required', reason, since: new Date().toISOString() } });
}

/** Refreshes (rotating and storing the refresh token) and returns an access token; under the state lock. */
export async function freshAccessToken(session: ConsoleSession): Promise<string> {
  const { state, secrets } = session;
  if (state.session.state === 'login-required') throw new CompanionError('LOGIN_REQUIRED', loginAgainMessage(state.console, state.session.reason));
  const refreshToken = await secrets.get(state.console, 'refresh-token');
  if (!refreshToken) throw new CompanionError('LOGIN_REQUIRED', loginAgainMessage(state.console, `no refresh token in the ${secrets.backend}`));
  const tokens = await refreshTokens(await session.oauth(), state.console, refreshToken);
  await secrets.set(state.console, 'refresh-token', tokens.refreshToken);
  return tokens.accessToken;
}

/**
 * Runs `task` with the Console API as the logged-in user, under the state lock; a login found over is recorded.
 * The session is re-read under the lock (another process may have rotated the token meanwhile).
 */
export async function withConsoleApi<T>(configDir: string, task: (api: ConsoleApi, session: ConsoleSession) => Promise<T>, service?: string): Promise<T> {
  await requireState(configDir); // before the lock, which would create the state dir
  return withStateLock(configDir, async () => {
    const session = await openConsoleSession(configDir, service);
    try {
      const token = await freshAccessToken(session);
      return await task(consoleApi(session.state.console, session.fetch, token), session);
    } catch (error) {
      if (error instanceof CompanionError && error.code === 'LOGIN_REQUIRED') await markLoginRequired(configDir, error.message.replace(/; log in again:.*$/, ''));
      throw error;
    }
  });
}
