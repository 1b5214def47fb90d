import { mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ensureDir, removeFileDurable, tempPrefix, writeFileAtomic } from './atomic-file.js';

let dir: string;
const mode = async (path: string): Promise<number> => (await stat(path)).mode & 0o7777;

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'drawbridge-atomic-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('writeFileAtomic', () => {
  it('writes a new file with mode 0600 by default, whatever the umask', async () => {
    const old = process.umask(0o000);
    try {
      await writeFileAtomic(join(dir, 'key.pem'), 'secret');
    } finally {
      process.umask(old);
    }
    expect(await readFile(join(dir, 'key.pem'), 'utf8')).toBe('secret');
    expect(await mode(join(dir, 'key.pem'))).toBe(0o600);
  });

  it('gives the requested mode even when the umask would narrow it', async () => {
    const old = process.umask(0o077);
    try {
      await writeFileAtomic(join(dir, 'meta.json'), '{}', { mode: 0o644 });
    } finally {
      process.umask(old);
    }
    expect(await mode(join(dir, 'meta.json'))).toBe(0o644);
  });

  it('replaces an existing file (new inode: readers holding the old one keep the old content)', async () => {
    const path = join(dir, 'config.json');
    await writeFile(path, 'old', { mode: 0o644 });
    const before = await stat(path);
    await writeFileAtomic(path, Buffer.from('new'), { mode: 0o644 });
    const after = await stat(path);
    expect(await readFile(path, 'utf8')).toBe('new');
    expect(after.ino).not.toBe(before.ino);
    expect(await readdir(dir)).toEqual(['config.json']);
  });

  it('leaves no temp file behind when the rename fails', async () => {
    const target = join(dir, 'occupied');
    await mkdir(join(target, 'child'), { recursive: true }); // rename(file → non-empty dir) fails
    await expect(writeFileAtomic(target, 'x')).rejects.toThrow();
    expect((await readdir(dir)).filter((n) => n.startsWith(tempPrefix(target)))).toEqual([]);
    expect(await readdir(dir)).toEqual(['occupied']);
  });

  it('fails cleanly when the directory does not exist', async () => {
    await expect(writeFileAtomic(join(dir, 'missing', 'f'), 'x')).rejects.toMatchObject({ code: 'ENOENT' });
    expect(await readdir(dir)).toEqual([]);
  });

  it('many concurrent writers: the file always holds one complete version, no temp files remain', async () => {
    const path = join(dir, 'f');
    const versions = Array.from({ length: 20 }, (_, i) => `${i}`.repeat(10_000));
    await Promise.all(versions.map((v) => writeFileAtomic(path, v)));
    expect(versions).toContain(await readFile(path, 'utf8'));
    expect(await readdir(dir)).toEqual(['f']);
  });
});

describe('removeFileDurable', () => {
  it('removes a file and says so; a missing file is not an error', async () => {
    await writeFile(join(dir, 'a'), 'x');
    expect(await removeFileDurable(join(dir, 'a'))).toBe(true);
    expect(await removeFileDurable(join(dir, 'a'))).toBe(false);
    expect(await readdir(dir)).toEqual([]);
  });
});

describe('ensureDir', () => {
  it('creates missing parents with the mode', async () => {
    await ensureDir(join(dir, 'a', 'b'), 0o700);
    expect(await mode(join(dir, 'a', 'b'))).toBe(0o700);
  });

  it('narrows an existing directory only when told to', async () => {
    await mkdir(join(dir, 'loose'), { mode: 0o755 });
    await ensureDir(join(dir, 'loose'), 0o700);
    expect(await mode(join(dir, 'loose'))).toBe(0o755);
    await ensureDir(join(dir, 'loose'), 0o700, true);
    expect(await mode(join(dir, 'loose'))).toBe(0o700);
  });
});
