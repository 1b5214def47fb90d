/**
 * The docker CLI's configuration directory and its `config.json`, read and written the way the CLI does
 * (docker/cli v28.2 `cli/config/config.go`, `cli/config/configfile/file.go`), minus its one bad habit.
 *
 * - The directory is `$DOCKER_CONFIG` when set and non-empty, else `$HOME/.docker` (the CLI's `config.Dir()`;
 *   HOME empty → the passwd entry, as Go's `os.UserHomeDir` + `user.Current` do).
 * - A missing `config.json` reads as `{}`. A malformed one is an error, never "empty": writing after a failed
 *   parse would destroy the user's file (docker/cli#5075).
 * - Every key we do not change survives — `auths`, `credsStore`, `credHelpers`, `plugins`, `proxies` and keys
 *   this code has never heard of, in their order. (The CLI's own save drops keys its Go struct lacks; we do not.)
 * - Saved as the CLI saves: tab-indented JSON, no trailing newline; through a symlink to its target (a dotfiles
 *   repo), keeping the existing file's mode and owner (new file: 0600); atomically (temp + fsync + rename).
 * - `currentContext`: the CLI stores "default" as no key at all; a write that would change nothing is skipped
 *   (`docker context use` does the same, so no config.json appears just for "default").
 */
import { lstat, readFile, readlink, realpath, stat } from 'node:fs/promises';
import { userInfo } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { ensureDir, writeFileAtomic } from './atomic-file.js';

export const CONFIG_FILE_NAME = 'config.json';
export const DEFAULT_CONTEXT_NAME = 'default';

/** config.json's JSON object; only `currentContext` is interpreted here. */
export type DockerConfig = Record<string, unknown>;

export class DockerConfigError extends Error {
  override name = 'DockerConfigError';
  readonly code = 'DOCKER_CONFIG_INVALID';
}

/** The docker CLI's config directory for `env` (absolute). */
export function dockerConfigDir(env: NodeJS.ProcessEnv = process.env): string {
  const override = env.DOCKER_CONFIG;
  if (override) return resolve(override);
  const home = env.HOME || userInfo().homedir;
  return join(home, '.docker');
}

export const dockerConfigPath = (configDir: string): string => join(configDir, CONFIG_FILE_NAME);

/** Reads config.json; `{}` when it does not exist. */
export async function readDockerConfig(configDir: string): Promise<DockerConfig> {
  const path = dockerConfigPath(configDir);
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return {};
    throw error;
  }
  // The CLI's json.Decoder accepts an empty file as EOF → defaults; so do we.
  if (text.trim() === '') return {};
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (error) {
    throw new DockerConfigError(`${path} is not valid JSON (${(error as Error).message}); fix or move it, it was left untouched`);
  }
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) {
    throw new DockerConfigError(`${path} does not hold a JSON object; fix or move it, it was left untouched`);
  }
  return parsed as DockerConfig;
}

/** Where a save really goes: the target of a symlink (dangling ones included), else the path itself. */
async function saveTarget(path: string): Promise<string> {
  try {
    return await realpath(path);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
  }
  try {
    const link = await lstat(path);
    if (link.isSymbolicLink()) {
      // Dangling: follow it one level, like Go's EvalSymlinks error path.
      return resolve(dirname(path), await readlink(path));
    }
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
  }
  return path;
}

/** Writes `config` as the CLI does (see the header). */
export async function writeDockerConfig(configDir: string, config: DockerConfig): Promise<void> {
  await ensureDir(configDir, 0o700);
  const target = await saveTarget(dockerConfigPath(configDir));
  const existing = await stat(target).catch(() => undefined);
  await writeFileAtomic(target, JSON.stringify(config, null, '\t'), {
    mode: existing ? existing.mode & 0o7777 : 0o600,
    ...(existing ? { owner: { uid: existing.uid, gid: existing.gid } } : {}),
  });
}

/**
 * Read-modify-write: `mutate` changes the object in place and says whether anything changed; nothing is
 * written when it did not.
 */
export async function updateDockerConfig(configDir: string, mutate: (config: DockerConfig) => boolean): Promise<boolean> {
  const config = await readDockerConfig(configDir);
  if (!mutate(config)) return false;
  await writeDockerConfig(configDir, config);
  return true;
}

/** The CLI's current context from config.json ("default" when none is set). */
export async function getCurrentContext(configDir: string): Promise<string> {
  const value = (await readDockerConfig(configDir)).currentContext;
  return typeof value === 'string' && value !== '' ? value : DEFAULT_CONTEXT_NAME;
}

/** Sets config.json's currentContext ("default" removes the key); resolves to whether the file changed. */
export async function setCurrentContext(configDir: string, name: string): Promise<boolean> {
  return updateDockerConfig(configDir, (config) => {
    const current = typeof config.currentContext === 'string' ? config.currentContext : '';
    const wanted = name === DEFAULT_CONTEXT_NAME ? '' : name;
    if (current === wanted) return false;
    if (wanted === '') delete config.currentContext;
    else config.currentContext = wanted;
    return true;
  });
}
