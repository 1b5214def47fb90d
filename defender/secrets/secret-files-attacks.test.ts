// The secrets base against another local user, on the real filesystem: `nobody` (uid 65534) plants what the
// review found — a symbolic link at the predictable base name in /dev/shm (before the first file secret, and after
// the base was released), a directory of their own there, a parent of their own — and the Defender must refuse,
// naming the path, without mounting, writing, or removing anything through it. Entries planted inside the base (an
// instance directory that is a link or someone else's, a link at a file's name) must not redirect a write either.
// Needs root (chown, mount, running commands as nobody); skipped otherwise.
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chownSync, lstatSync, mkdirSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, test } from 'vitest';
import { mountOf, secretFiles } from './secret-files.js';

const NOBODY = 65534;
const errors: string[] = [];
const log = { info: () => undefined, warn: () => undefined, error: (_m: string, f?: Record<string, unknown>) => void errors.push(String(f?.error ?? '')) };
const id = 'cd'.repeat(16);
const SECRET = `secret-${randomBytes(6).toString('hex')}`;
const secret = [{ name: 'token', mode: 0o444, value: SECRET }];
const made: string[] = [];

/** A path in /dev/shm (sticky, writable by all), removed after the test. */
function shmPath(what: string): string {
  const p = `/dev/shm/drawbridge-attack-test-${what}-${randomBytes(4).toString('hex')}`;
  made.push(p);
  return p;
}

/** Runs a command as nobody: the attacker. */
function asNobody(cmd: string, ...args: string[]): void {
  execFileSync(cmd, args, { uid: NOBODY, gid: NOBODY, stdio: 'ignore' });
}

/** nobody's own 0777 directory in /dev/shm, where a redirected write would land. */
function attackerDir(): string {
  const dir = shmPath('eve');
  asNobody('mkdir', '-m', '0777', dir);
  return dir;
}

/** Every file under `dir`, however deep (what the attacker got). */
function everything(dir: string): string[] {
  return readdirSync(dir, { recursive: true, encoding: 'utf8' });
}

function unmountAll(path: string): void {
  while (mountOf(path)?.point === path) execFileSync('umount', [path], { stdio: 'ignore' });
}

/** Unmounts whatever is mounted at or under `dir` (a regressed Defender may have mounted through a link). */
function unmountUnder(dir: string): void {
  const points = readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .map((l) => l.split(' ')[4] ?? '')
    .filter((p) => p === dir || p.startsWith(`${dir}/`))
    .sort((a, b) => b.length - a.length);
  for (const p of points) unmountAll(p);
}

afterEach(() => {
  for (const p of made.splice(0)) {
    unmountUnder(p);
    rmSync(p, { recursive: true, force: true });
  }
  errors.length = 0;
});

afterAll(() => {
  for (const p of made) rmSync(p, { recursive: true, force: true });
});

describe.skipIf(process.getuid?.() !== 0)('the secrets base against another local user', () => {
  test('a symbolic link planted at the base name before the first file secret is refused: nothing is mounted or written through it', () => {
    const eve = attackerDir();
    const base = shmPath('base');
    asNobody('ln', '-s', eve, base);
    const files = secretFiles(base, log);
    expect(() => files.write(id, secret)).toThrow(`file secrets: the secrets directory ${base} is a symbolic link`);
    expect(() => files.write(id, secret)).toThrow(/Remove it \(as root: rm -r \/dev\/shm\/drawbridge-attack-test-base-\w+\)/);
    expect(mountOf(eve)?.point).not.toBe(eve);
    expect(everything(eve)).toEqual([]);
    expect(lstatSync(base).isSymbolicLink()).toBe(true); // left for the admin to see and remove
    expect(files.kind).toBe(null);
  });

  test('after the base was released, a link planted at its name is refused too; sweeps neither list nor remove through it', () => {
    const base = shmPath('base');
    const files = secretFiles(base, log);
    files.write(id, secret);
    files.remove(id);
    files.release();
    expect(() => lstatSync(base)).toThrow(/ENOENT/);
    const eve = attackerDir();
    asNobody('mkdir', join(eve, id));
    asNobody('ln', '-s', eve, base);
    expect(files.instances()).toEqual([]);
    expect(errors.join('\n')).toContain(`${base} is a symbolic link`);
    expect(() => files.remove(id)).toThrow(/is a symbolic link/);
    files.release();
    expect(() => files.write(id, secret)).toThrow(/is a symbolic link/);
    expect(everything(eve)).toEqual([id]);
    expect(mountOf(eve)?.point).not.toBe(eve);
    expect(lstatSync(base).isSymbolicLink()).toBe(true);
  });

  test("a directory another user made at the base name is refused (the mount or fallback would keep them its owner)", () => {
    const base = shmPath('base');
    asNobody('mkdir', '-m', '0700', base);
    const files = secretFiles(base, log);
    expect(() => files.write(id, secret)).toThrow(`file secrets: the secrets directory ${base} is a directory owned by uid ${NOBODY}, mode 0700, not the Defender's own (uid 0)`);
    expect(mountOf(base)?.point).not.toBe(base);
    expect(everything(base)).toEqual([]);
    expect(lstatSync(base).uid).toBe(NOBODY);
  });

  test('a directory of its own that others may write to is refused, not tightened', () => {
    const base = shmPath('base');
    mkdirSync(base);
    execFileSync('chmod', ['0777', base]);
    expect(() => secretFiles(base, log).write(id, secret)).toThrow(/mode 0777: others may write to it/);
    expect(mountOf(base)?.point).not.toBe(base);
    expect(everything(base)).toEqual([]);
  });

  test("a base under another user's directory is refused (they could swap it), and so is one under a symbolic link", () => {
    const eve = attackerDir();
    expect(() => secretFiles(join(eve, 'base'), log).write(id, secret)).toThrow(`file secrets: ${eve} (above the secrets directory ${eve}/base): it belongs to uid ${NOBODY}, so another user could replace the secrets directory`);
    expect(everything(eve)).toEqual([]);
    const link = shmPath('link');
    const real = shmPath('real');
    mkdirSync(real, { mode: 0o700 });
    symlinkSync(real, link);
    expect(() => secretFiles(join(link, 'base'), log).write(id, secret)).toThrow(`file secrets: ${link} (above the secrets directory ${link}/base) is a symbolic link`);
    expect(everything(real)).toEqual([]);
  });

  test('missing parents are made (0700) and the base works under them', () => {
    const top = shmPath('parents');
    const files = secretFiles(join(top, 'a', 'base'), log);
    files.write(id, secret);
    expect(lstatSync(top).mode & 0o777).toBe(0o700);
    expect(readFileSync(join(files.hostDir(id), 'token'), 'utf8')).toBe(SECRET);
    unmountAll(files.base);
  });
});

describe.skipIf(process.getuid?.() !== 0)('entries planted inside the base', () => {
  test("a symbolic link in place of a container's directory is refused; nothing lands where it points", () => {
    const base = shmPath('base');
    const files = secretFiles(base, log);
    files.write('ef'.repeat(16), []);
    const eve = attackerDir();
    symlinkSync(eve, join(base, id));
    expect(() => files.write(id, secret)).toThrow(`file secrets: a container's secret directory ${base}/${id} is a symbolic link`);
    expect(everything(eve)).toEqual([]);
    files.remove(id);
    expect(() => lstatSync(join(base, id))).toThrow(/ENOENT/);
    expect(lstatSync(eve).isDirectory()).toBe(true);
  });

  test("a container's directory owned by another user is refused and left unwritten", () => {
    const base = shmPath('base');
    const files = secretFiles(base, log);
    files.write('ef'.repeat(16), []);
    mkdirSync(join(base, id), { mode: 0o755 });
    chownSync(join(base, id), NOBODY, NOBODY);
    expect(() => files.write(id, secret)).toThrow(`a container's secret directory ${base}/${id} is a directory owned by uid ${NOBODY}`);
    expect(everything(join(base, id))).toEqual([]);
  });

  test("a symbolic link at a secret file's name is replaced, never written through", () => {
    const base = shmPath('base');
    const files = secretFiles(base, log);
    files.write(id, []);
    const eve = attackerDir();
    writeFileSync(join(eve, 'mine'), 'attacker');
    symlinkSync(join(eve, 'mine'), join(files.hostDir(id), 'token'));
    files.write(id, secret);
    expect(lstatSync(join(files.hostDir(id), 'token')).isFile()).toBe(true);
    expect(readFileSync(join(files.hostDir(id), 'token'), 'utf8')).toBe(SECRET);
    expect(readFileSync(join(eve, 'mine'), 'utf8')).toBe('attacker');
  });
});
