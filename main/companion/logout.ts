/**
 * `logout`: ends the login at the Console and undoes everything login, renewals and `use` did, so the docker
 * config dir is as it was before login.
 *
 * - The certificate this machine holds is revoked at the Console (the docker CLI stops working with it at every
 *   Defender within seconds), then the refresh token at the revocation endpoint (RFC 7009), which ends that login's
 *   tokens too. An unreachable Console does not block logout: the rest is still undone, and the result says the
 *   login and the certificate run out by themselves at their end dates (the certificate's key is deleted anyway).
 * - Keychain entries (key, refresh token) are deleted; a keychain that cannot be reached is reported, not fatal.
 * - The current context goes back to what it was before our `use` (use-host.ts), then our contexts are removed,
 *   the backed-up `{ca,cert,key}.pem` restored, and the state dir removed; the config dir too if login made it.
 * - Without a login there is nothing to do, and that is a success.
 */
import { readdir, rm, rmdir } from 'node:fs/promises';
import { join } from 'node:path';
import { DockerCertFiles, type RestoreResult } from './docker-cert-files.js';
import { readState, removeState, stateDirOf, withStateLock } from './companion-state.js';
import { consoleApi } from './console-api.js';
import { freshAccessToken, openConsoleSession } from './console-session.js';
import { revokeLogin } from './console-oauth.js';
import { removeHostContexts } from './materialise-hosts.js';
import { restoreCurrentContext } from './use-host.js';
import { SECRET_KINDS } from './secret-store.js';

export interface LogoutResult {
  readonly wasLoggedIn: boolean;
  readonly console?: string;
  readonly revoked: boolean;
  /** The certificate this machine held was revoked at the Console. */
  readonly certificateRevoked: boolean;
  readonly removedContexts: readonly string[];
  readonly currentContext?: string;
  readonly certFiles?: RestoreResult;
  /** Things that could not be done, each with what it means. */
  readonly warnings: readonly string[];
}

export async function logout(configDir: string, service?: string): Promise<LogoutResult> {
  const state = await readState(configDir);
  if (!state) return { wasLoggedIn: false, revoked: false, certificateRevoked: false, removedContexts: [], warnings: [] };
  const warnings: string[] = [];
  const removed = await withStateLock(configDir, async () => {
    let revoked = false;
    let certificateRevoked = false;
    try {
      const session = await openConsoleSession(configDir, service);
      if (await session.secrets.get(state.console, 'refresh-token')) {
        try {
          await consoleApi(state.console, session.fetch, await freshAccessToken(session)).revokeCertificate(state.cert.serial);
          certificateRevoked = true;
        } catch (error) {
          warnings.push(`the certificate ${state.cert.serial} was not revoked (${(error as Error).message}); it stays valid until ${state.cert.notAfter}, but its key is deleted from this machine`);
        }
      }
      const refreshToken = await session.secrets.get(state.console, 'refresh-token'); // rotated by freshAccessToken
      if (refreshToken) {
        try {
          await revokeLogin(await session.oauth(), state.console, refreshToken);
          revoked = true;
        } catch (error) {
          warnings.push(`the Console was not told (${(error as Error).message}); this login ends by itself on ${state.loginExpiresAt}`);
        }
      }
      for (const kind of SECRET_KINDS) await session.secrets.delete(state.console, kind);
    } catch (error) {
      warnings.push(`the ${state.secretBackend} could not be reached (${(error as Error).message}); remove the "drawbridge" entries for ${state.console} yourself`);
    }
    const ours = new Set(state.hosts.map((h) => h.context).filter((c): c is string => c !== null));
    const currentContext = await restoreCurrentContext(configDir, ours, state.previousContext);
    const contexts = await removeHostContexts(configDir, state.console);
    const certFiles = await new DockerCertFiles({ configDir, stateDir: stateDirOf(configDir) }).restore();
    if (certFiles.kept.length) warnings.push(`${certFiles.kept.join(', ')} changed since login and were kept; your originals are in ${certFiles.keptBackupDir}`);
    await removeState(configDir);
    return { revoked, certificateRevoked, removedContexts: contexts.removed, currentContext, certFiles };
  });
  // The lock is gone with withStateLock; now the state dir (empty unless a kept backup is in it) and the config
  // dir if login created it and nothing else lives there.
  const stateDir = stateDirOf(configDir);
  await rm(join(stateDir, 'secrets'), { recursive: true, force: true });
  await rmdir(join(stateDir, 'docker-cert-backup')).catch(() => undefined); // kept backups stay, with the dir
  await rmdir(stateDir).catch(() => undefined);
  if (!state.configDirExisted && (await readdir(configDir).catch(() => ['?'])).length === 0) await rmdir(configDir).catch(() => undefined);
  return { wasLoggedIn: true, console: state.console, ...removed, warnings };
}
