/**
 * Directories the Defender writes into as root must be its own, and the directories above them out of other users'
 * reach. The secrets base has a predictable name in a directory every local user may write to (/dev/shm), so
 * anything found at that name, or on the way to it, may have been put there by another user to have the Defender
 * mount or write through it; a socket listener's directory likewise (listener.ts).
 *
 * - Nothing is followed: every check is an lstat (or an fstat of a descriptor opened with O_NOFOLLOW), and a
 *   symbolic link where a directory is expected is refused, never resolved.
 * - Each directory above is a real directory owned by root or by the Defender's user; one that others may write
 *   to must be sticky (/dev/shm, /tmp), so that no other user can rename or remove what the Defender made in it
 *   (othersMayReplace). The configured path is therefore its real path (no symbolic link in it).
 * - A directory is made with a plain mkdir, which fails when anything is already at the name. What is found there
 *   (made by an earlier run) is used only when it is a directory owned by the Defender's user that no one else may
 *   write to; anything else is refused with an error that names the path and says to remove it. It is never
 *   chown'ed, chmod'ed or emptied to make it fit: another user may already hold a file or descriptor in it.
 */
import { closeSync, constants, fchmodSync, fstatSync, lstatSync, mkdirSync, openSync, type Stats } from 'node:fs';
import { dirname } from 'node:path';

const uid = (): number => process.geteuid?.() ?? 0;

function lstatOrNull(path: string): Stats | null {
  try {
    return lstatSync(path);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw e;
  }
}

function whatItIs(st: Stats): string {
  if (st.isSymbolicLink()) return 'a symbolic link';
  if (!st.isDirectory()) return 'not a directory';
  return `a directory owned by uid ${st.uid}, mode ${(st.mode & 0o7777).toString(8).padStart(4, '0')}`;
}

/** Why `st` is not a directory of the Defender's own that no one else may write to (null when it is). */
function notOwn(st: Stats): string | null {
  if (st.isSymbolicLink() || !st.isDirectory()) return whatItIs(st);
  if (st.uid !== uid()) return `${whatItIs(st)}, not the Defender's own (uid ${uid()})`;
  if ((st.mode & 0o022) !== 0) return `${whatItIs(st)}: others may write to it`;
  return null;
}

function refusal(path: string, what: string, why: string): Error {
  return new Error(`file secrets: ${what} ${path} is ${why}; the Defender writes secrets only into a directory it made itself. Remove it (as root: rm -r ${path}) and the Defender makes it again`);
}

/** mkdir that takes an existing entry as it is (the caller checks what it is). */
export function mkdirIfAbsent(path: string, mode: number): void {
  try {
    mkdirSync(path, { mode });
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
  }
}

/**
 * Why another user could rename or remove what is in directory `st` (null when no one but root and the Defender's
 * user can): it belongs to someone else, or group or others may write to it and it is not sticky.
 */
export function othersMayReplace(st: Stats): string | null {
  if (st.uid !== 0 && st.uid !== uid()) return `it belongs to uid ${st.uid}`;
  if ((st.mode & 0o022) !== 0 && (st.mode & 0o1000) === 0) return `others may write to it and it is not sticky (mode ${(st.mode & 0o7777).toString(8)})`;
  return null;
}

/** Checks every directory above `path` (see the module comment), making the missing ones (0700). */
export function checkParents(path: string): void {
  const parents: string[] = [];
  for (let p = dirname(path); ; p = dirname(p)) {
    parents.unshift(p);
    if (p === dirname(p)) break;
  }
  for (const p of parents) {
    if (lstatOrNull(p) === null) {
      mkdirIfAbsent(p, 0o700);
      const made = lstatSync(p);
      if (notOwn(made) !== null) throw refusal(p, 'the directory above the secrets directory,', notOwn(made)!);
      continue;
    }
    const st = lstatSync(p);
    if (st.isSymbolicLink()) throw new Error(`file secrets: ${p} (above the secrets directory ${path}) is a symbolic link; give --secrets-dir as a real path, without symbolic links`);
    if (!st.isDirectory()) throw refusal(p, 'the directory above the secrets directory,', whatItIs(st));
    const why = othersMayReplace(st);
    if (why !== null) throw new Error(`file secrets: ${p} (above the secrets directory ${path}): ${why}, so another user could replace the secrets directory; give a --secrets-dir whose parents only root may change`);
  }
}

/** Throws unless `path` is a directory of the Defender's own that no one else may write to. */
export function checkOwnDir(path: string, what: string): Stats {
  const st = lstatSync(path);
  const why = notOwn(st);
  if (why !== null) throw refusal(path, what, why);
  return st;
}

/** Whether `path` exists (as anything, a symbolic link included), without following it. */
export function presentAt(path: string): boolean {
  return lstatOrNull(path) !== null;
}

/**
 * Makes `path` with a plain mkdir (or takes the one an earlier run made), checks it is the Defender's own and sets
 * its mode through a descriptor opened without following links, so the mode lands on the directory checked.
 */
export function makeOwnDir(path: string, mode: number, what: string): void {
  mkdirIfAbsent(path, mode);
  setOwnDirMode(path, mode, what);
}

/** Sets the mode of `path` after checking (again) that it is the Defender's own, through an O_NOFOLLOW descriptor. */
export function setOwnDirMode(path: string, mode: number, what: string): void {
  const checked = checkOwnDir(path, what);
  let fd: number;
  try {
    fd = openSync(path, constants.O_RDONLY | constants.O_DIRECTORY | constants.O_NOFOLLOW);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ELOOP' || code === 'ENOTDIR') throw refusal(path, what, 'no longer the directory checked');
    throw e;
  }
  try {
    const st = fstatSync(fd);
    if (st.ino !== checked.ino || st.dev !== checked.dev) throw refusal(path, what, 'no longer the directory checked');
    fchmodSync(fd, mode);
  } finally {
    closeSync(fd);
  }
}
