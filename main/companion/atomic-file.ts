/**
 * Crash-safe file writes for everything the companion owns (keys, certificates, docker config, manifests).
 *
 * - The data goes to a hidden temp file in the same directory (same file system, so rename is atomic), created
 *   exclusively with mode 0600 whatever the umask, written, fsynced, closed, then renamed over the target; the
 *   directory is fsynced so the rename itself survives a crash. Readers see the old file or the new one, never
 *   a torn one.
 * - The final mode is set on the temp file before the rename (never a moment with a wider mode on the target).
 * - Temp names start with '.': the docker CLI skips hidden files when it lists a context's TLS files.
 * - On any failure the temp file is removed: no `.tmp` leftovers.
 */
import { randomBytes } from 'node:crypto';
import { constants } from 'node:fs';
import { mkdir, open, rename, rm, unlink } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';

export interface AtomicWriteOptions {
  /** Mode of the written file (default 0600). */
  readonly mode?: number;
  /** Owner to give the file (only honoured when we may chown, i.e. as root). */
  readonly owner?: { readonly uid: number; readonly gid: number };
}

const isRoot = (): boolean => typeof process.getuid === 'function' && process.getuid() === 0;

/** The temp-file prefix for `path`; exported so tests can assert none is left behind. */
export const tempPrefix = (path: string): string => `.${basename(path)}.tmp-`;

/** fsync a directory, so that entries created, renamed or removed in it are durable. */
export async function fsyncDir(dir: string): Promise<void> {
  const handle = await open(dir, constants.O_RDONLY | constants.O_DIRECTORY);
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/** Writes `data` to `path` atomically: temp file (0600) + fsync + rename + directory fsync. */
export async function writeFileAtomic(path: string, data: string | Uint8Array, opts: AtomicWriteOptions = {}): Promise<void> {
  const dir = dirname(path);
  const temp = join(dir, `${tempPrefix(path)}${randomBytes(6).toString('hex')}`);
  const handle = await open(temp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, 0o600);
  try {
    try {
      await handle.chmod(opts.mode ?? 0o600); // umask may have narrowed (or, never, widened) the create mode
      if (opts.owner && isRoot()) await handle.chown(opts.owner.uid, opts.owner.gid);
      await handle.writeFile(data);
      await handle.sync();
    } finally {
      await handle.close();
    }
    await rename(temp, path);
  } catch (error) {
    await rm(temp, { force: true });
    throw error;
  }
  await fsyncDir(dir);
}

/** Removes `path` if present and makes the removal durable; resolves to whether something was removed. */
export async function removeFileDurable(path: string): Promise<boolean> {
  try {
    await unlink(path);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw error;
  }
  await fsyncDir(dirname(path));
  return true;
}

/**
 * Creates `dir` (and missing parents) with `mode`, and makes sure an existing `dir` has exactly that mode when
 * `enforce` is set (for directories that hold secrets: a pre-existing 0755 one is narrowed).
 */
export async function ensureDir(dir: string, mode: number, enforce = false): Promise<void> {
  await mkdir(dir, { recursive: true, mode });
  if (enforce) {
    const handle = await open(dir, constants.O_RDONLY | constants.O_DIRECTORY);
    try {
      if (((await handle.stat()).mode & 0o7777) !== mode) await handle.chmod(mode);
    } finally {
      await handle.close();
    }
  }
}
