/**
 * `$DOCKER_CONFIG/{ca,cert,key}.pem`: where the docker CLI looks for TLS files when DOCKER_TLS_VERIFY is set
 * and DOCKER_CERT_PATH is not (docker/cli `cli/flags/options.go`: DOCKER_CERT_PATH defaults to config.Dir()).
 *
 * - Before the first install, whatever is there is backed up into the companion's own state dir
 *   (`<stateDir>/docker-cert-backup/<id of configDir>/`, dirs 0700, files 0600), described by `manifest.json`:
 *   per file, absent / a regular file (mode, owner, mtime, SHA-256) / a symlink (its target). The manifest is
 *   written only once every backup is on disk, and before the first file is replaced.
 * - Later installs (renewals) replace the files without backing up again: the backup is of the user's files.
 * - `restore()` puts every file back exactly (content, mode, mtime, owner as root, symlinks as symlinks) and
 *   removes the files that did not exist before. A file changed since we installed it is the user's now: it is
 *   kept, and so is its backup (moved aside and reported), so nothing is lost either way.
 * - Every replacement is atomic (temp + fsync + rename); a restore that is interrupted can simply be run again.
 */
import { createHash } from 'node:crypto';
import { lstat, readFile, readlink, rename, rm, symlink, utimes } from 'node:fs/promises';
import { join } from 'node:path';
import { ensureDir, fsyncDir, removeFileDurable, writeFileAtomic } from './atomic-file.js';
import { TLS_FILE_NAMES, type TlsMaterial } from './docker-context-store.js';

export type CertFileName = (typeof TLS_FILE_NAMES)[number];

type Original =
  | { readonly kind: 'absent' }
  | { readonly kind: 'file'; readonly mode: number; readonly uid: number; readonly gid: number; readonly mtimeMs: number; readonly sha256: string }
  | { readonly kind: 'symlink'; readonly target: string };

interface Manifest {
  readonly version: 1;
  readonly configDir: string;
  readonly createdAt: string;
  readonly originals: Record<CertFileName, Original>;
  /** SHA-256 of what we last installed, per file (absent until written). */
  readonly installed: Partial<Record<CertFileName, string>>;
}

export interface RestoreResult {
  readonly restored: CertFileName[];
  readonly removed: CertFileName[];
  /** Files changed since we installed them: left as they are; their backups moved to `backupDir`. */
  readonly kept: CertFileName[];
  readonly keptBackupDir?: string;
}

const sha256 = (data: Uint8Array | string): string => createHash('sha256').update(data).digest('hex');
const MANIFEST = 'manifest.json';

async function lstatOrUndefined(path: string) {
  try {
    return await lstat(path);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
}

export class DockerCertFiles {
  readonly backupDir: string;

  constructor(private readonly opts: { readonly configDir: string; readonly stateDir: string }) {
    this.backupDir = join(opts.stateDir, 'docker-cert-backup', sha256(opts.configDir).slice(0, 16));
  }

  private async readManifest(): Promise<Manifest | undefined> {
    try {
      return JSON.parse(await readFile(join(this.backupDir, MANIFEST), 'utf8')) as Manifest;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw error;
    }
  }

  private writeManifest(manifest: Manifest): Promise<void> {
    return writeFileAtomic(join(this.backupDir, MANIFEST), `${JSON.stringify(manifest, null, 2)}\n`, { mode: 0o600 });
  }

  /** True once install() has run (and restore() has not). */
  async isInstalled(): Promise<boolean> {
    return (await this.readManifest()) !== undefined;
  }

  private async backUp(): Promise<Manifest> {
    await ensureDir(this.backupDir, 0o700, true);
    const originals = {} as Record<CertFileName, Original>;
    for (const file of TLS_FILE_NAMES) {
      const path = join(this.opts.configDir, file);
      const st = await lstatOrUndefined(path);
      if (!st) {
        originals[file] = { kind: 'absent' };
      } else if (st.isSymbolicLink()) {
        originals[file] = { kind: 'symlink', target: await readlink(path) };
      } else if (st.isFile()) {
        const data = await readFile(path);
        await writeFileAtomic(join(this.backupDir, file), data, { mode: 0o600 });
        originals[file] = { kind: 'file', mode: st.mode & 0o7777, uid: st.uid, gid: st.gid, mtimeMs: st.mtimeMs, sha256: sha256(data) };
      } else {
        throw new Error(`${path} is neither a file nor a symlink; move it away before installing certificates there`);
      }
    }
    const manifest: Manifest = { version: 1, configDir: this.opts.configDir, createdAt: new Date().toISOString(), originals, installed: {} };
    await this.writeManifest(manifest);
    return manifest;
  }

  /** Installs the three PEM files (0600), backing up what was there first (once). */
  async install(tls: TlsMaterial): Promise<{ backedUp: CertFileName[] }> {
    const existing = await this.readManifest();
    const manifest = existing ?? (await this.backUp());
    await ensureDir(this.opts.configDir, 0o700);
    const data: Record<CertFileName, string> = { 'ca.pem': tls.ca, 'cert.pem': tls.cert, 'key.pem': tls.key };
    const installed: Partial<Record<CertFileName, string>> = { ...manifest.installed };
    for (const file of TLS_FILE_NAMES) {
      await writeFileAtomic(join(this.opts.configDir, file), data[file], { mode: 0o600 });
      installed[file] = sha256(data[file]);
    }
    await this.writeManifest({ ...manifest, installed });
    return { backedUp: existing ? [] : TLS_FILE_NAMES.filter((f) => manifest.originals[f].kind !== 'absent') };
  }

  /** Is the file at `path` still what we installed (or, after an interrupted install, possibly the original)? */
  private async stillOurs(file: CertFileName, manifest: Manifest): Promise<boolean> {
    const path = join(this.opts.configDir, file);
    const st = await lstatOrUndefined(path);
    if (!st) return true; // removed by the user: putting the original back is what they get after logout anyway
    const ours = manifest.installed[file];
    if (ours === undefined) return true; // install was interrupted before this file: it is still the original
    return st.isFile() && sha256(await readFile(path)) === ours;
  }

  private async putBack(file: CertFileName, original: Original): Promise<'restored' | 'removed'> {
    const path = join(this.opts.configDir, file);
    if (original.kind === 'absent') {
      await removeFileDurable(path);
      return 'removed';
    }
    if (original.kind === 'symlink') {
      const temp = join(this.opts.configDir, `.${file}.link-${process.pid}`);
      await rm(temp, { force: true });
      await symlink(original.target, temp);
      await rename(temp, path);
      await fsyncDir(this.opts.configDir);
      return 'restored';
    }
    const data = await readFile(join(this.backupDir, file));
    if (sha256(data) !== original.sha256) throw new Error(`the backup of ${file} in ${this.backupDir} is damaged; nothing was restored for it`);
    await writeFileAtomic(path, data, { mode: original.mode, owner: { uid: original.uid, gid: original.gid } });
    const now = Date.now() / 1000;
    await utimes(path, now, original.mtimeMs / 1000); // seconds as a number: a Date would cut to whole ms
    return 'restored';
  }

  /** Puts back what install() found, and forgets the backup. Nothing to do when nothing was installed. */
  async restore(): Promise<RestoreResult> {
    const manifest = await this.readManifest();
    const result: { restored: CertFileName[]; removed: CertFileName[]; kept: CertFileName[]; keptBackupDir?: string } = { restored: [], removed: [], kept: [] };
    if (!manifest) return result;
    for (const file of TLS_FILE_NAMES) {
      if (!(await this.stillOurs(file, manifest))) {
        result.kept.push(file);
        continue;
      }
      result[await this.putBack(file, manifest.originals[file])].push(file);
    }
    if (result.kept.length > 0) {
      // Keep the user's originals for the files we could not put back; drop the rest of the backup.
      const aside = `${this.backupDir}-kept-${Date.now()}`;
      for (const file of TLS_FILE_NAMES) if (!result.kept.includes(file)) await rm(join(this.backupDir, file), { force: true });
      await rename(this.backupDir, aside);
      result.keptBackupDir = aside;
    } else {
      await rm(this.backupDir, { recursive: true, force: true });
    }
    return result;
  }
}
