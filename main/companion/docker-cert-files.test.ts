import { chmod, lstat, mkdir, mkdtemp, readdir, readFile, readlink, rm, symlink, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { DockerCertFiles } from './docker-cert-files.js';

let root: string;
let configDir: string;
let stateDir: string;
let files: DockerCertFiles;

beforeEach(async () => {
  root = await mkdtemp(join(tmpdir(), 'drawbridge-certfiles-'));
  configDir = join(root, 'home', '.docker');
  stateDir = join(root, 'state');
  files = new DockerCertFiles({ configDir, stateDir });
});
afterEach(async () => {
  await rm(root, { recursive: true, force: true });
});

const NEW = { ca: 'drawbridge CA\n', cert: 'drawbridge cert\n', key: 'drawbridge key\n' };

/**
 * Everything observable about a tree: type, mode, mtime (whole seconds: utimes takes float seconds, so a restored
 * mtime is within a microsecond, not bit-identical), content or link target.
 */
async function snapshot(dir: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  const walk = async (d: string): Promise<void> => {
    for (const name of (await readdir(d)).sort()) {
      const p = join(d, name);
      const st = await lstat(p);
      const key = relative(dir, p);
      if (st.isSymbolicLink()) out[key] = `link -> ${await readlink(p)}`;
      else if (st.isDirectory()) {
        out[key] = `dir ${(st.mode & 0o7777).toString(8)}`;
        await walk(p);
      } else out[key] = `file ${(st.mode & 0o7777).toString(8)} mtime=${Math.floor(st.mtimeMs / 1000)} ${await readFile(p, 'utf8')}`;
    }
  };
  await walk(dir);
  return out;
}

async function installed(): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const f of ['ca.pem', 'cert.pem', 'key.pem']) {
    const st = await lstat(join(configDir, f));
    out[f] = `${(st.mode & 0o777).toString(8)} ${await readFile(join(configDir, f), 'utf8')}`;
  }
  return out;
}

const expectedInstalled = { 'ca.pem': '600 drawbridge CA\n', 'cert.pem': '600 drawbridge cert\n', 'key.pem': '600 drawbridge key\n' };

describe('DockerCertFiles', () => {
  it('no files before: install creates them 0600, restore removes exactly them', async () => {
    await mkdir(configDir, { recursive: true });
    await writeFile(join(configDir, 'config.json'), '{"auths":{}}');
    const before = await snapshot(configDir);
    expect(await files.install(NEW)).toEqual({ backedUp: [] });
    expect(await installed()).toEqual(expectedInstalled);
    expect(await files.isInstalled()).toBe(true);
    expect(await files.restore()).toEqual({ restored: [], removed: ['ca.pem', 'cert.pem', 'key.pem'], kept: [] });
    expect(await snapshot(configDir)).toEqual(before);
    expect(await files.isInstalled()).toBe(false);
  });

  it('existing files (other modes, old mtimes): backed up, then restored byte for byte with mode and mtime', async () => {
    await mkdir(configDir, { recursive: true });
    await writeFile(join(configDir, 'ca.pem'), 'their CA\n');
    await writeFile(join(configDir, 'cert.pem'), 'their cert\n');
    await writeFile(join(configDir, 'key.pem'), 'their key\n');
    await chmod(join(configDir, 'ca.pem'), 0o644);
    await chmod(join(configDir, 'cert.pem'), 0o444);
    await chmod(join(configDir, 'key.pem'), 0o400);
    for (const f of ['ca.pem', 'cert.pem', 'key.pem']) await utimes(join(configDir, f), new Date(1e12), new Date(1_600_000_000_000));
    const before = await snapshot(configDir);
    expect(await files.install(NEW)).toEqual({ backedUp: ['ca.pem', 'cert.pem', 'key.pem'] });
    expect(await installed()).toEqual(expectedInstalled);
    // the backup is private
    const backup = await snapshot(files.backupDir);
    for (const [name, entry] of Object.entries(backup)) expect(`${name} ${entry}`).toMatch(/^\S+ file 600 /);
    expect((await lstat(files.backupDir)).mode & 0o777).toBe(0o700);
    expect(await files.restore()).toEqual({ restored: ['ca.pem', 'cert.pem', 'key.pem'], removed: [], kept: [] });
    expect(await snapshot(configDir)).toEqual(before);
    expect(await readdir(join(stateDir, 'docker-cert-backup'))).toEqual([]);
  });

  it('some files existed, a symlink among them: each goes back to exactly what it was', async () => {
    await mkdir(join(root, 'certs'), { recursive: true });
    await writeFile(join(root, 'certs', 'ca.pem'), 'linked CA\n');
    await mkdir(configDir, { recursive: true });
    await symlink('../../certs/ca.pem', join(configDir, 'ca.pem'));
    await writeFile(join(configDir, 'key.pem'), 'their key\n', { mode: 0o600 });
    const before = await snapshot(root);
    await files.install(NEW);
    expect(await installed()).toEqual(expectedInstalled);
    expect(await readFile(join(root, 'certs', 'ca.pem'), 'utf8')).toBe('linked CA\n'); // the link target is never written
    expect(await files.restore()).toEqual({ restored: ['ca.pem', 'key.pem'], removed: ['cert.pem'], kept: [] });
    const withoutState = (s: Record<string, string>) => Object.fromEntries(Object.entries(s).filter(([k]) => !k.startsWith('state')));
    expect(withoutState(await snapshot(root))).toEqual(withoutState(before));
  });

  it('the config dir did not exist: install creates it (0700); restore removes the files again', async () => {
    await files.install(NEW);
    expect((await lstat(configDir)).mode & 0o777).toBe(0o700);
    await files.restore();
    expect(await readdir(configDir)).toEqual([]);
  });

  it('a second install (renewal) keeps the backup of the user\'s originals', async () => {
    await mkdir(configDir, { recursive: true });
    await writeFile(join(configDir, 'cert.pem'), 'their cert\n', { mode: 0o644 });
    const before = await snapshot(configDir);
    await files.install(NEW);
    expect(await files.install({ ...NEW, cert: 'renewed cert\n' })).toEqual({ backedUp: [] });
    expect(await readFile(join(configDir, 'cert.pem'), 'utf8')).toBe('renewed cert\n');
    await files.restore();
    expect(await snapshot(configDir)).toEqual(before);
  });

  it('a file the user changed after install is theirs: kept, and its original set aside', async () => {
    await mkdir(configDir, { recursive: true });
    await writeFile(join(configDir, 'ca.pem'), 'their CA\n');
    await files.install(NEW);
    await writeFile(join(configDir, 'ca.pem'), 'installed by hand later\n');
    const result = await files.restore();
    expect(result).toMatchObject({ restored: [], removed: ['cert.pem', 'key.pem'], kept: ['ca.pem'] });
    expect(await readFile(join(configDir, 'ca.pem'), 'utf8')).toBe('installed by hand later\n');
    expect(await readFile(join(result.keptBackupDir!, 'ca.pem'), 'utf8')).toBe('their CA\n');
    expect(await files.isInstalled()).toBe(false);
  });

  it('restore without install does nothing; restore twice is harmless', async () => {
    expect(await files.restore()).toEqual({ restored: [], removed: [], kept: [] });
    await files.install(NEW);
    await files.restore();
    expect(await files.restore()).toEqual({ restored: [], removed: [], kept: [] });
  });

  it('an interrupted install (backup + manifest written, files not yet replaced) restores cleanly', async () => {
    await mkdir(configDir, { recursive: true });
    await writeFile(join(configDir, 'key.pem'), 'their key\n', { mode: 0o600 });
    const before = await snapshot(configDir);
    // Simulate: install ran up to the manifest, then crashed.
    await files.install(NEW);
    const manifestPath = join(files.backupDir, 'manifest.json');
    const manifest = JSON.parse(await readFile(manifestPath, 'utf8')) as { installed: Record<string, string> };
    manifest.installed = {};
    await writeFile(manifestPath, JSON.stringify(manifest));
    await writeFile(join(configDir, 'key.pem'), 'their key\n', { mode: 0o600 });
    await files.restore();
    const after = await snapshot(configDir);
    expect(Object.keys(after)).toEqual(Object.keys(before));
    expect(after['key.pem']!.replace(/mtime=\d+ /, '')).toBe(before['key.pem']!.replace(/mtime=\d+ /, ''));
  });

  it('leaves no temp files anywhere', async () => {
    await mkdir(configDir, { recursive: true });
    await writeFile(join(configDir, 'ca.pem'), 'x');
    await files.install(NEW);
    const hidden = (paths: string[]) => paths.filter((p) => /(^|\/)\.[^/]*$/.test(p) && p !== 'home/.docker');
    expect(hidden([...Object.keys(await snapshot(configDir)), ...Object.keys(await snapshot(stateDir))])).toEqual([]);
    await files.restore();
    expect(hidden(Object.keys(await snapshot(root)))).toEqual([]);
  });
});
