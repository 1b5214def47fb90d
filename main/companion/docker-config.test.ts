import { lstat, mkdir, mkdtemp, readdir, readFile, readlink, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { tmpdir, userInfo } from 'node:os';
import { join, resolve } from 'node:path';
import { afterEach, beforeEach, describe, expect, it, test } from 'vitest';
import { DockerConfigError, dockerConfigDir, getCurrentContext, readDockerConfig, setCurrentContext, updateDockerConfig } from './docker-config.js';

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'drawbridge-dockercfg-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

const cfgPath = () => join(dir, 'config.json');

/** A config.json as people really have them, plus keys the docker CLI itself does not know. */
const RICH = {
  auths: { 'https://index.docker.io/v1/': { auth: 'dXNlcjpwdw==' }, 'registry.example:5000': {} },
  credsStore: 'desktop',
  credHelpers: { 'gcr.io': 'gcloud', '123456789.dkr.ecr.eu-west-1.amazonaws.com': 'ecr-login' },
  plugins: { buildx: { 'hooks': 'build' }, 'debug': { hooks: 'exec' } },
  proxies: { default: { httpProxy: 'http://proxy:3128', noProxy: '*.local,169.254/16' } },
  psFormat: 'table {{.ID}}\t{{.Names}}',
  features: { hooks: 'true' },
  'x-unknown-tool': { nested: [1, 2.5, true, null, { deep: 'é ✓ \u0000' }], empty: {} },
  currentContext: 'mine',
  zzz: 1,
};

test.each([
  ['DOCKER_CONFIG wins', { DOCKER_CONFIG: '/etc/dc', HOME: '/home/u' }, '/etc/dc'],
  ['relative DOCKER_CONFIG is made absolute', { DOCKER_CONFIG: 'rel/dc', HOME: '/home/u' }, resolve('rel/dc')],
  ['empty DOCKER_CONFIG counts as unset', { DOCKER_CONFIG: '', HOME: '/home/u' }, '/home/u/.docker'],
  ['HOME', { HOME: '/home/u' }, '/home/u/.docker'],
  ['no HOME: the passwd entry', {}, join(userInfo().homedir, '.docker')],
])('dockerConfigDir: %s', (_, env, expected) => {
  expect(dockerConfigDir(env)).toBe(expected);
});

describe('config.json', () => {
  it('reads a missing or empty file as {}', async () => {
    expect(await readDockerConfig(dir)).toEqual({});
    await writeFile(cfgPath(), '  \n');
    expect(await readDockerConfig(dir)).toEqual({});
  });

  it('keeps every key it does not change, in order, and saves as the CLI does (tabs, no newline)', async () => {
    await writeFile(cfgPath(), JSON.stringify(RICH, null, 2), { mode: 0o600 });
    expect(await setCurrentContext(dir, 'drawbridge-dev-a')).toBe(true);
    const text = await readFile(cfgPath(), 'utf8');
    expect(JSON.parse(text)).toEqual({ ...RICH, currentContext: 'drawbridge-dev-a' });
    expect(Object.keys(JSON.parse(text))).toEqual(Object.keys(RICH));
    expect(text).toBe(JSON.stringify({ ...RICH, currentContext: 'drawbridge-dev-a' }, null, '\t'));
  });

  it('"default" removes currentContext and touches nothing else', async () => {
    await writeFile(cfgPath(), JSON.stringify(RICH));
    await setCurrentContext(dir, 'default');
    const { currentContext: _, ...rest } = RICH;
    expect(JSON.parse(await readFile(cfgPath(), 'utf8'))).toEqual(rest);
    expect(await getCurrentContext(dir)).toBe('default');
  });

  it('does not write when nothing changes (no config.json appears for "default")', async () => {
    expect(await setCurrentContext(dir, 'default')).toBe(false);
    expect(await readdir(dir)).toEqual([]);
    await writeFile(cfgPath(), '{"currentContext":"a"}', { mode: 0o644 });
    const before = await stat(cfgPath());
    expect(await setCurrentContext(dir, 'a')).toBe(false);
    expect((await stat(cfgPath())).ino).toBe(before.ino);
    expect(await readFile(cfgPath(), 'utf8')).toBe('{"currentContext":"a"}');
  });

  it('creates the dir (0700) and a new config.json with mode 0600', async () => {
    const sub = join(dir, 'new', '.docker');
    await setCurrentContext(sub, 'x');
    expect((await stat(sub)).mode & 0o777).toBe(0o700);
    expect((await stat(join(sub, 'config.json'))).mode & 0o777).toBe(0o600);
    expect(await getCurrentContext(sub)).toBe('x');
  });

  it('keeps the mode of an existing config.json', async () => {
    await writeFile(cfgPath(), '{}', { mode: 0o644 });
    await setCurrentContext(dir, 'x');
    expect((await stat(cfgPath())).mode & 0o777).toBe(0o644);
  });

  it('writes through a symlink to its target and keeps the link', async () => {
    await mkdir(join(dir, 'dotfiles'));
    await writeFile(join(dir, 'dotfiles', 'docker.json'), '{"credsStore":"pass"}');
    await mkdir(join(dir, '.docker'));
    await symlink('../dotfiles/docker.json', join(dir, '.docker', 'config.json'));
    await setCurrentContext(join(dir, '.docker'), 'x');
    expect((await lstat(join(dir, '.docker', 'config.json'))).isSymbolicLink()).toBe(true);
    expect(await readlink(join(dir, '.docker', 'config.json'))).toBe('../dotfiles/docker.json');
    expect(JSON.parse(await readFile(join(dir, 'dotfiles', 'docker.json'), 'utf8'))).toEqual({ credsStore: 'pass', currentContext: 'x' });
    expect((await readdir(join(dir, 'dotfiles'))).sort()).toEqual(['docker.json']);
  });

  it('writes a dangling symlink\'s target', async () => {
    await symlink('elsewhere.json', cfgPath());
    await setCurrentContext(dir, 'x');
    expect((await lstat(cfgPath())).isSymbolicLink()).toBe(true);
    expect(JSON.parse(await readFile(join(dir, 'elsewhere.json'), 'utf8'))).toEqual({ currentContext: 'x' });
  });

  it.each([
    ['not JSON', '{"auths": {'],
    ['not an object', '["a"]'],
    ['null', 'null'],
  ])('refuses a malformed file (%s) and leaves it untouched', async (_, text) => {
    await writeFile(cfgPath(), text);
    await expect(setCurrentContext(dir, 'x')).rejects.toBeInstanceOf(DockerConfigError);
    await expect(getCurrentContext(dir)).rejects.toThrow(/left untouched/);
    expect(await readFile(cfgPath(), 'utf8')).toBe(text);
    expect(await readdir(dir)).toEqual(['config.json']);
  });

  it('updateDockerConfig: no temp files left, concurrent-safe replacement', async () => {
    await writeFile(cfgPath(), JSON.stringify(RICH));
    await updateDockerConfig(dir, (c) => {
      c.psFormat = 'x';
      return true;
    });
    expect(await readdir(dir)).toEqual(['config.json']);
    expect((await readDockerConfig(dir)).psFormat).toBe('x');
  });
});
