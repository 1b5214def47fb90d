/**
 * `use <host>`: the docker CLI's current context, set to a Drawbridge host (and put back by logout).
 *
 * - Before the first `use`, config.json is kept as it was (bytes, or "absent") in the state dir (0600; it may
 *   hold registry credentials, like config.json itself). Logout writes exactly those bytes back when nothing but
 *   currentContext changed since, else only resets currentContext — the user's later edits win.
 * - When DOCKER_HOST or DOCKER_CONTEXT in the environment would send plain `docker` commands elsewhere, the
 *   result says so, with the command that fixes it.
 */
import { readFile, realpath, stat, utimes } from 'node:fs/promises';
import { join } from 'node:path';
import { removeFileDurable, writeFileAtomic } from './atomic-file.js';
import { CompanionError } from './companion-errors.js';
import { requireState, stateDirOf, writeState } from './companion-state.js';
import { DEFAULT_CONTEXT_NAME, dockerConfigPath, getCurrentContext, readDockerConfig, setCurrentContext } from './docker-config.js';
import { DockerContextStore, type UseResult } from './docker-context-store.js';

const CONFIG_BACKUP = 'config-before-use.json';

interface ConfigBackup {
  /** config.json's text before our first `use`, or null when there was none. */
  readonly text: string | null;
  /** Its mtime then, put back with the bytes. */
  readonly mtimeMs?: number;
}

export async function useHost(configDir: string, host: string, env: NodeJS.ProcessEnv = process.env): Promise<UseResult & { context: string }> {
  const state = await requireState(configDir);
  const store = new DockerContextStore(configDir);
  const context = host === DEFAULT_CONTEXT_NAME ? undefined : await store.findHost(host);
  if (host !== DEFAULT_CONTEXT_NAME && (!context || context.drawbridge?.console !== state.console)) {
    const known = state.hosts.filter((h) => h.context).map((h) => h.hostName);
    throw new CompanionError('USAGE', `no Drawbridge host "${host}"${known.length ? ` (yours: ${known.join(', ')})` : ''}; run drawbridge hosts to refresh the list`);
  }
  const name = context?.name ?? DEFAULT_CONTEXT_NAME;
  const backupPath = join(stateDirOf(configDir), CONFIG_BACKUP);
  const hasBackup = await readFile(backupPath).then(() => true, () => false);
  if (!hasBackup && name !== DEFAULT_CONTEXT_NAME) {
    const text = await readFile(dockerConfigPath(configDir), 'utf8').catch((e: NodeJS.ErrnoException) => {
      if (e.code === 'ENOENT') return null;
      throw e;
    });
    const previous = await readDockerConfig(configDir);
    const mtimeMs = text === null ? undefined : (await stat(dockerConfigPath(configDir))).mtimeMs;
    await writeFileAtomic(backupPath, JSON.stringify({ text, ...(mtimeMs === undefined ? {} : { mtimeMs }) } satisfies ConfigBackup), { mode: 0o600 });
    await writeState(configDir, { ...state, previousContext: typeof previous.currentContext === 'string' && previous.currentContext ? previous.currentContext : DEFAULT_CONTEXT_NAME });
  }
  return { ...(await store.use(name, env)), context: name };
}

/** Same JSON apart from currentContext? */
function sameButContext(a: Record<string, unknown>, b: Record<string, unknown>): boolean {
  const strip = ({ currentContext: _, ...rest }: Record<string, unknown>) => JSON.stringify(rest);
  return strip(a) === strip(b);
}

/**
 * Logout's half of `use`: when the current context is one of ours (about to be removed), the previous one comes
 * back — the original bytes when nothing else changed. Resolves to the context now current.
 */
export async function restoreCurrentContext(configDir: string, ours: ReadonlySet<string>, previousContext: string | null): Promise<string> {
  const backupPath = join(stateDirOf(configDir), CONFIG_BACKUP);
  const backup = await readFile(backupPath, 'utf8').then((t) => JSON.parse(t) as ConfigBackup, () => undefined);
  const now = await readDockerConfig(configDir);
  const current = typeof now.currentContext === 'string' && now.currentContext ? now.currentContext : DEFAULT_CONTEXT_NAME;
  if (ours.has(current)) {
    const before = backup ? (backup.text === null || backup.text.trim() === '' ? {} : (JSON.parse(backup.text) as Record<string, unknown>)) : undefined;
    if (backup && before && sameButContext(before, now)) {
      if (backup.text === null) await removeFileDurable(dockerConfigPath(configDir));
      else await writeBytesBack(configDir, backup.text, backup.mtimeMs);
    } else {
      await setCurrentContext(configDir, previousContext && !ours.has(previousContext) ? previousContext : DEFAULT_CONTEXT_NAME);
    }
  }
  await removeFileDurable(backupPath);
  return getCurrentContext(configDir);
}

/** config.json's original bytes (and mtime), through a symlink to its target, with the file's current mode. */
async function writeBytesBack(configDir: string, text: string, mtimeMs: number | undefined): Promise<void> {
  const path = dockerConfigPath(configDir);
  if ((await readFile(path, 'utf8').catch(() => null)) === text) return;
  const target = await realpath(path).catch(() => path);
  const mode = await stat(target).then((st) => st.mode & 0o7777, () => 0o600);
  await writeFileAtomic(target, text, { mode });
  if (mtimeMs !== undefined) await utimes(target, Date.now() / 1000, mtimeMs / 1000);
}
