/**
 * Directories that receive secret files must be the Defender's own. The secrets base has a predictable name in a
 * directory every local user may write to (/dev/shm), so anything found at that name, or on the way to it, may
 * have been put there by another user to have the Defender mount or write through it.
 *
 * - Nothing is followed: every check is an lstat (or an fstat of a descriptor opened with O_NOFOLLOW), and a
 *   symbolic link where a directory is expected is refused, never resolved.
 * - Each directory above is a real directory owned by root or by the Defender's user; one that others may write
 *   to must be sticky (/dev/shm, /tmp), so that no other user can rename or remove what the Defender made in it.
 *   The configured path is therefore its real path (no symbolic link in it).
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

/** Checks every directory above `path` (see the module comment), making the missing ones (0700). */
export function checkParents(path: string): void {
  const parents: string[] = [];
  for (let p = dirname(path); ; p = dirname(p)) {
    parents.unshift(p);
    if (p === dirname(p)) break;
  }
  for (const p of parents) {
    let st = lstatOrNull(p);
    if (st === null) {
      try {
        mkdirSync(p, { mode: 0o700 });
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      }
      st = lstatSync(p);
      if (notOwn(st) !== null) throw refusal(p, 'the directory above the secrets directory,', notOwn(st)!);
      continue;
    }
    if (st.isSymbolicLink()) throw new Error(`file secrets: ${p} (above the secrets directory ${path}) is a symbolic link; give --secrets-dir as a real path, without symbolic links`);
    if (!st.isDirectory()) throw refusal(p, 'the directory above the secrets directory,', whatItIs(st));
    if (st.uid !== 0 && st.uid !== uid()) throw new Error(`file secrets: ${p} (above the secrets directory ${path}) belongs to uid ${st.uid}, who could replace the secrets directory; give a --secrets-dir whose parents belong to root`);
    if ((st.mode & 0o022) !== 0 && (st.mode & 0o1000) === 0) throw new Error(`file secrets: ${p} (above the secrets directory ${path}) may be written by others and is not sticky, so they could replace the secrets directory; give a --secrets-dir whose parents only root may write to`);
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
  try {
    mkdirSync(path, { mode });
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
  }
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
