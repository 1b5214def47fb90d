import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, test } from 'vitest';
import { mountOf, secretFiles } from './secret-files.js';

const MOUNTINFO = [
  '22 1 8:1 / / rw,relatime - ext4 /dev/sda1 rw',
  '29 22 0:25 / /dev/shm rw,nosuid,nodev - tmpfs tmpfs rw',
  '42 29 0:38 / /dev/shm/db\\040x rw - tmpfs drawbridge-secrets rw,mode=700',
  '50 22 0:40 / /run rw - tmpfs tmpfs rw',
].join('\n');

describe('mountOf', () => {
  test.each([
    ['/var/lib/x', '/', 'ext4'],
    ['/dev/shm/abc', '/dev/shm', 'tmpfs'],
    ['/dev/shm/db x/1', '/dev/shm/db x', 'tmpfs'],
    ['/dev/shmx', '/', 'ext4'],
    ['/run', '/run', 'tmpfs'],
  ])('%s is on %s (%s)', (path, point, fsType) => expect(mountOf(path, MOUNTINFO)).toEqual({ point, fsType }));
});

const log = { info: () => undefined, warn: () => undefined, error: () => undefined };
const base = join(mkdtempSync('/dev/shm/drawbridge-secret-files-test-'), 'base');

afterAll(() => {
  try {
    execFileSync('umount', [base], { stdio: 'ignore' });
  } catch {
    /* not mounted (not root) */
  }
  rmSync(join(base, '..'), { recursive: true, force: true });
});

describe('secretFiles', () => {
  const files = secretFiles(base, log);
  const id = 'ab'.repeat(16);

  test('nothing is mounted or created before the first file secret; then an in-memory base, private', () => {
    expect(files.kind).toBe(null);
    expect(files.instances()).toEqual([]);
    expect(existsSync(base)).toBe(false);
    files.write(id, []);
    expect(['tmpfs', 'shm']).toContain(files.kind);
    expect(statSync(base).mode & 0o777).toBe(0o700);
    expect(mountOf(base)?.fsType).toBe('tmpfs');
  });

  test('writes files with their modes, replaces them whole, drops files no longer given, removes the directory', () => {
    files.write(id, [{ name: 'a', mode: 0o400, value: 'one' }, { name: 'b.pem', mode: 0o444, value: 'two' }]);
    const dir = files.hostDir(id);
    expect(statSync(dir).mode & 0o777).toBe(0o755);
    expect(statSync(join(dir, 'a')).mode & 0o777).toBe(0o400);
    expect(statSync(join(dir, 'b.pem')).mode & 0o777).toBe(0o444);
    files.write(id, [{ name: 'a', mode: 0o400, value: 'one-rotated' }]);
    expect(readFileSync(join(dir, 'a'), 'utf8')).toBe('one-rotated');
    expect(readdirSync(dir)).toEqual(['a']);
    expect(files.instances()).toEqual([id]);
    files.remove(id);
    expect(files.instances()).toEqual([]);
  });

  test('instance ids never become paths outside the base', () => {
    expect(() => files.hostDir('../../etc')).toThrow(/invalid secret instance id/);
    expect(() => files.write('x', [])).toThrow(/invalid/);
  });

  test('reopening an existing tmpfs reuses it (running containers point into it); release only once it is empty', () => {
    files.write(id, [{ name: 'kept', mode: 0o400, value: 'v' }]);
    const again = secretFiles(base, log);
    again.write(id, [{ name: 'kept', mode: 0o400, value: 'v2' }]);
    expect(readFileSync(join(files.hostDir(id), 'kept'), 'utf8')).toBe('v2');
    again.release();
    expect(again.instances()).toEqual([id]);
    again.remove(id);
    again.release();
    expect(existsSync(base)).toBe(false);
    expect(mountOf(base)?.point).not.toBe(base);
  });
});
