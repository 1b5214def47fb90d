/**
 * The host side of file secrets: one directory per container (named by its marker `instance` id) under a base
 * directory that lives in memory, bind-mounted read-only at /run/secrets by dockerd.
 *
 * - In memory only: the base is a tmpfs the Defender mounts itself (`mode=0700,nosuid,nodev,noexec`, size-capped)
 *   when it may mount, else a private directory on a filesystem that already is in memory (/dev/shm). A base on
 *   anything else (a disk) is refused: file secrets are then unavailable and creates that need them fail closed.
 *   A tmpfs already mounted there (a Defender restart) is reused, never mounted over: running containers' binds
 *   point into it.
 * - The base is the Defender's own: made by it (a plain mkdir), never a symbolic link, owned by its user, written by
 *   no one else, under parents only root or that user can change (../owned-dir.ts). Its name is predictable and
 *   /dev/shm is open to every user, so whatever else is found there is refused with an error naming the path, never
 *   mounted on, written through or removed; it is checked again after the mount (path, owner, mode, filesystem).
 * - The base is root-owned 0700, so no host user but root can reach a container's directory; each container's
 *   directory is 0755 (inside the container /run/secrets is listable) and each file 0400 (root only) or 0444 (all
 *   users), as its rule says. Permissions inside the container are checked against the container's own path, so
 *   the base's 0700 does not hide the files from the container.
 * - Files are written whole: a temp file (final mode from the start) inside the container's directory, then a
 *   rename, so a running container sees the old or the new value through its directory mount, never half of one.
 * - Nothing found in the base redirects a write: a container's directory is made with a plain mkdir and used only
 *   when it is the Defender's own (a link or another user's directory in its place is refused), its mode is set
 *   through an O_NOFOLLOW descriptor, temp files are opened O_EXCL|O_NOFOLLOW, and the rename replaces whatever
 *   has the file's name (a link included) instead of following it.
 * - Instance ids are checked against INSTANCE_ID before they become a path.
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { closeSync, constants, fchmodSync, openSync, readdirSync, readFileSync, realpathSync, renameSync, rmSync, writeSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { FileSecret } from '../../shared/secrets/inject-secrets.js';
import { INSTANCE_ID } from '../../shared/secrets/secret-labels.js';
import type { Logger } from '../log.js';
import { checkOwnDir, checkParents, makeOwnDir, mkdirIfAbsent, presentAt, setOwnDirMode } from '../owned-dir.js';

const IN_MEMORY_FS = new Set(['tmpfs', 'ramfs']);
const TMPFS_OPTIONS = 'mode=0700,nosuid,nodev,noexec,size=64m';

export interface SecretFiles {
  /** The base directory, and how it is held in memory (null until the first write). */
  readonly base: string;
  readonly kind: 'tmpfs' | 'shm' | null;
  hostDir(instance: string): string;
  /** Creates or refreshes the container's directory with exactly `files`. */
  write(instance: string, files: readonly FileSecret[]): void;
  remove(instance: string): void;
  /** The instance directories present now. */
  instances(): string[];
  /** Unmounts and removes the base when no container has a directory in it (Defender stop). */
  release(): void;
}

/** The mount that holds `path`: its mount point and filesystem type (from /proc/self/mountinfo). */
export function mountOf(path: string, mountinfo = readFileSync('/proc/self/mountinfo', 'utf8')): { point: string; fsType: string } | null {
  let best: { point: string; fsType: string } | null = null;
  for (const line of mountinfo.split('\n')) {
    const fields = line.split(' ');
    const sep = fields.indexOf('-');
    if (fields.length < 10 || sep < 0) continue;
    const point = fields[4]!.replace(/\\(\d{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
    const inside = point === '/' || path === point || path.startsWith(`${point}/`);
    if (inside && (best === null || point.length >= best.point.length)) best = { point, fsType: fields[sep + 1]! };
  }
  return best;
}

function instanceDir(base: string, instance: string): string {
  if (!INSTANCE_ID.test(instance)) throw new Error('invalid secret instance id');
  return join(base, instance);
}

/** Mounts (or checks) the in-memory base directory; throws when no in-memory place can be had, or none of its own. */
function prepareBase(base: string, log: Logger): 'tmpfs' | 'shm' {
  checkParents(base);
  mkdirIfAbsent(base, 0o700);
  checkOwnDir(base, 'the secrets directory');
  let kind: 'tmpfs' | 'shm';
  const current = mountOf(base);
  if (current?.point === base && IN_MEMORY_FS.has(current.fsType)) {
    kind = 'tmpfs';
  } else {
    try {
      execFileSync('mount', ['-t', 'tmpfs', '-o', TMPFS_OPTIONS, 'drawbridge-secrets', base], { stdio: ['ignore', 'ignore', 'pipe'], timeout: 10_000 });
      kind = 'tmpfs';
    } catch (e) {
      const holder = mountOf(base);
      if (!holder || !IN_MEMORY_FS.has(holder.fsType)) {
        throw new Error(`cannot mount a tmpfs at ${base} (${String((e as { stderr?: Buffer }).stderr ?? (e as Error).message).trim()}) and it is not on an in-memory filesystem; give a directory under /dev/shm`);
      }
      kind = 'shm';
    }
  }
  setOwnDirMode(base, 0o700, 'the secrets directory');
  checkMountedBase(base, kind);
  if (process.getuid?.() !== 0) log.warn('file secrets: the Defender is not root, so secret files belong to its own user, not root', { dir: base });
  log.info('file secrets are kept in memory', { dir: base, kind });
  return kind;
}

/** After the mount: the path is still the real path of the Defender's own 0700 directory, on an in-memory fs. */
function checkMountedBase(base: string, kind: 'tmpfs' | 'shm'): void {
  const st = checkOwnDir(base, 'the secrets directory');
  const holder = mountOf(base);
  const inMemory = holder !== null && IN_MEMORY_FS.has(holder.fsType) && (kind === 'shm' || holder.point === base);
  if ((st.mode & 0o777) !== 0o700 || realpathSync(base) !== base || !inMemory) {
    throw new Error(`file secrets: the secrets directory ${base} is not the private in-memory directory just prepared (mode ${(st.mode & 0o777).toString(8)}, real path ${realpathSync(base)}, on ${holder?.fsType ?? '?'} at ${holder?.point ?? '?'}); remove it (as root: umount ${base}; rm -r ${base}) and the Defender makes it again`);
  }
}

function writeOne(dir: string, file: FileSecret): void {
  const temp = join(dir, `.${file.name}.${randomBytes(6).toString('hex')}.tmp`);
  // O_EXCL and O_NOFOLLOW: a name already there (a link planted to redirect the write) fails the open.
  const fd = openSync(temp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, file.mode);
  try {
    fchmodSync(fd, file.mode); // the umask must not loosen or tighten the rule's mode
    const bytes = Buffer.from(file.value, 'utf8');
    for (let off = 0; off < bytes.length; ) off += writeSync(fd, bytes, off);
  } catch (err) {
    closeSync(fd);
    rmSync(temp, { force: true });
    throw err;
  }
  closeSync(fd);
  renameSync(temp, join(dir, file.name));
}

/**
 * The secret directories under `baseDir`. The base is prepared (mounted) on the first write, so a Defender that
 * never injects a file secret mounts nothing; `release` unmounts and removes it once no container has a directory.
 */
export function secretFiles(baseDir: string, log: Logger): SecretFiles {
  const base = resolve(baseDir);
  let kind: 'tmpfs' | 'shm' | null = null;
  /** Whether the base is there and the Defender's own; false when absent, logged when it is something else. */
  const ownBase = (): boolean => {
    if (!presentAt(base)) return false;
    try {
      checkOwnDir(base, 'the secrets directory');
      return true;
    } catch (e) {
      log.error('file secrets: not touching the secrets directory', { dir: base, error: (e as Error).message });
      return false;
    }
  };
  const instances = (): string[] => (ownBase() ? readdirSync(base).filter((n) => INSTANCE_ID.test(n)) : []);
  return {
    base,
    get kind() {
      return kind;
    },
    hostDir: (instance) => instanceDir(base, instance),
    write(instance, files) {
      const dir = instanceDir(base, instance);
      if (kind === null || !presentAt(base)) kind = prepareBase(base, log);
      else checkOwnDir(base, 'the secrets directory');
      makeOwnDir(dir, 0o755, "a container's secret directory");
      for (const f of files) writeOne(dir, f);
      const wanted = new Set(files.map((f) => f.name));
      for (const name of readdirSync(dir)) if (!wanted.has(name) && !name.startsWith('.')) rmSync(join(dir, name), { force: true });
    },
    remove(instance) {
      const dir = instanceDir(base, instance);
      if (!presentAt(base)) return;
      checkOwnDir(base, 'the secrets directory');
      rmSync(dir, { recursive: true, force: true }); // a link in its place is removed, not followed
    },
    instances,
    release() {
      if (!ownBase() || instances().length) return;
      try {
        if (mountOf(base)?.point === base) execFileSync('umount', [base], { stdio: 'ignore', timeout: 10_000 });
        rmSync(base, { recursive: true, force: true });
        kind = null;
      } catch (e) {
        log.warn('file secrets: cannot unmount the empty secrets directory', { dir: base, error: (e as Error).message });
      }
    },
  };
}
