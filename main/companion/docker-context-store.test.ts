import { mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { afterEach, beforeEach, describe, expect, it, test } from 'vitest';
import { getCurrentContext, setCurrentContext } from './docker-config.js';
import {
  contextId,
  contextNameForHost,
  contextOverrides,
  DockerContextStore,
  resolveDockerContext,
  validateContextName,
  type ContextSpec,
} from './docker-context-store.js';

let dir: string;
let store: DockerContextStore;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'drawbridge-contexts-'));
  store = new DockerContextStore(dir);
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

const TLS = { ca: 'CA PEM\n', cert: 'CERT PEM\n', key: '-----BEGIN PRIVATE KEY-----\nk\n-----END PRIVATE KEY-----\n' };
const spec = (name = 'drawbridge-dev-a', over: Partial<ContextSpec> = {}): ContextSpec => ({
  name,
  dockerHost: 'tcp://dev-a.example:9998',
  tls: TLS,
  drawbridge: { console: 'https://console.example:8083', host: 'dev-a' },
  ...over,
});

/** Every path under dir with its type and mode: the layout as the docker CLI will see it. */
async function tree(root = dir): Promise<string[]> {
  const out: string[] = [];
  const walk = async (d: string): Promise<void> => {
    for (const e of (await readdir(d, { withFileTypes: true })).sort((a, b) => a.name.localeCompare(b.name))) {
      const p = join(d, e.name);
      out.push(`${((await stat(p)).mode & 0o777).toString(8)} ${relative(root, p)}${e.isDirectory() ? '/' : ''}`);
      if (e.isDirectory()) await walk(p);
    }
  };
  await walk(root);
  return out;
}

/** A context made the way `docker context create` makes it (no Drawbridge marker). */
async function foreignContext(name: string): Promise<void> {
  const meta = join(dir, 'contexts', 'meta', contextId(name));
  await mkdir(meta, { recursive: true });
  await writeFile(join(meta, 'meta.json'), JSON.stringify({ Name: name, Metadata: { Description: 'theirs' }, Endpoints: { docker: { Host: 'tcp://other:2376', SkipTLSVerify: false } } }));
}

test('context ids are the hex SHA-256 of the name (value from docker CLI 28.2: `docker context create t1`)', () => {
  expect(contextId('t1')).toBe('628b49d96dcde97a430dd4f597705899e09a968f793491e4b704cae33a40dc02');
});

test.each([
  ['drawbridge-dev-a', undefined],
  ['a.b_c+d-1', undefined],
  ['default', '"default" is a reserved context name'],
  ['x', 'is invalid'], // the CLI's pattern needs two characters at least
  ['-x', 'is invalid'],
  ['a/b', 'is invalid'],
  ['a b', 'is invalid'],
  ['', 'is invalid'],
])('validateContextName(%j)', (name, error) => {
  if (error) expect(() => validateContextName(name)).toThrow(error);
  else expect(() => validateContextName(name)).not.toThrow();
});

test.each([
  ['dev-a', 'drawbridge-dev-a'],
  ['prod.eu-1', 'drawbridge-prod.eu-1'],
  ['odd host/ä', 'drawbridge-odd-host--'],
])('contextNameForHost(%j) = %j', (host, name) => {
  expect(contextNameForHost(host)).toBe(name);
  validateContextName(name);
});

test.each([
  // contextFlag, DOCKER_HOST, DOCKER_CONTEXT, currentContext → context the CLI uses
  ['ctx', 'tcp://h:1', 'envctx', 'cur', 'ctx'],
  [undefined, 'tcp://h:1', 'envctx', 'cur', 'default'],
  [undefined, '', 'envctx', 'cur', 'envctx'],
  [undefined, undefined, undefined, 'cur', 'cur'],
  [undefined, undefined, '', '', 'default'],
])('resolveDockerContext: --context=%s DOCKER_HOST=%s DOCKER_CONTEXT=%s current=%s → %s', (flag, host, ctx, current, expected) => {
  const env: NodeJS.ProcessEnv = {};
  if (host !== undefined) env.DOCKER_HOST = host;
  if (ctx !== undefined) env.DOCKER_CONTEXT = ctx;
  expect(resolveDockerContext({ ...(flag ? { contextFlag: flag } : {}), env, currentContext: current })).toBe(expected);
});

test.each([
  ['drawbridge-dev-a', {}, []],
  ['drawbridge-dev-a', { DOCKER_HOST: 'unix:///var/run/docker.sock' }, ['unset DOCKER_HOST']],
  ['drawbridge-dev-a', { DOCKER_CONTEXT: 'other' }, ['unset DOCKER_CONTEXT']],
  ['drawbridge-dev-a', { DOCKER_CONTEXT: 'drawbridge-dev-a' }, []],
  ['drawbridge-dev-a', { DOCKER_HOST: 'tcp://x:1', DOCKER_CONTEXT: 'other' }, ['unset DOCKER_HOST', 'unset DOCKER_CONTEXT']],
  ['default', { DOCKER_HOST: 'tcp://x:1' }, []],
])('contextOverrides(%s, %j) → %j', (name, env, fixes) => {
  expect(contextOverrides(name, env).map((w) => w.fix)).toEqual(fixes);
});

describe('DockerContextStore', () => {
  it('writes the CLI format exactly, with the modes the CLI uses for TLS (0700/0600)', async () => {
    const created = await store.write(spec());
    const id = contextId('drawbridge-dev-a');
    expect(JSON.parse(await readFile(join(dir, 'contexts/meta', id, 'meta.json'), 'utf8'))).toEqual({
      Name: 'drawbridge-dev-a',
      Metadata: { Description: 'Drawbridge: dev-a via https://console.example:8083', Drawbridge: { console: 'https://console.example:8083', host: 'dev-a' } },
      Endpoints: { docker: { Host: 'tcp://dev-a.example:9998', SkipTLSVerify: false } },
    });
    expect(await tree()).toEqual([
      '755 contexts/',
      '755 contexts/meta/',
      `700 contexts/meta/${id}/`,
      `600 contexts/meta/${id}/meta.json`,
      '700 contexts/tls/',
      `700 contexts/tls/${id}/`,
      `700 contexts/tls/${id}/docker/`,
      `600 contexts/tls/${id}/docker/ca.pem`,
      `600 contexts/tls/${id}/docker/cert.pem`,
      `600 contexts/tls/${id}/docker/key.pem`,
    ]);
    for (const [file, text] of [['ca.pem', TLS.ca], ['cert.pem', TLS.cert], ['key.pem', TLS.key]] as const) {
      expect(await readFile(join(created.tlsEndpointPath, file), 'utf8')).toBe(text);
    }
    expect(created).toMatchObject({ metadataPath: join(dir, 'contexts/meta', id), tlsPath: join(dir, 'contexts/tls', id), tlsEndpointPath: join(dir, 'contexts/tls', id, 'docker') });
    expect(await getCurrentContext(dir)).toBe('default'); // never switched by a write
    expect(await readdir(dir)).toEqual(['contexts']); // no config.json either
  });

  it('updates in place (host, certificates) and leaves no temp files', async () => {
    await store.write(spec());
    const updated = await store.write(spec('drawbridge-dev-a', { dockerHost: 'tcp://dev-a.example:9999', tls: { ...TLS, cert: 'NEW CERT\n' } }));
    expect(updated.dockerHost).toBe('tcp://dev-a.example:9999');
    expect(await readFile(join(updated.tlsEndpointPath, 'cert.pem'), 'utf8')).toBe('NEW CERT\n');
    expect((await tree()).filter((l) => l.includes('/.'))).toEqual([]);
    expect(await tree()).toHaveLength(10);
  });

  it('never overwrites or removes a context it did not create', async () => {
    await foreignContext('drawbridge-dev-a');
    const before = await tree();
    await expect(store.write(spec())).rejects.toMatchObject({ code: 'CONTEXT_NOT_OURS' });
    await expect(store.remove('drawbridge-dev-a')).rejects.toMatchObject({ code: 'CONTEXT_NOT_OURS' });
    expect(await tree()).toEqual(before);
  });

  it('lists only its own contexts, sorted', async () => {
    await foreignContext('mine-by-hand');
    await store.write(spec('drawbridge-b'));
    await store.write(spec('drawbridge-a', { drawbridge: { console: 'https://c', host: 'a' } }));
    await mkdir(join(dir, 'contexts/meta/not-a-context')); // stray dirs are skipped like the CLI skips them
    expect((await store.list()).map((c) => [c.name, c.drawbridge?.host])).toEqual([['drawbridge-a', 'a'], ['drawbridge-b', 'dev-a']]);
    expect((await store.findHost('a'))?.name).toBe('drawbridge-a');
    expect((await store.findHost('drawbridge-b'))?.name).toBe('drawbridge-b');
    expect(await store.findHost('mine-by-hand')).toBeUndefined();
  });

  it('removal deletes only that context and leaves the store as it was before', async () => {
    await foreignContext('theirs');
    await setCurrentContext(dir, 'theirs');
    const before = await tree();
    await store.write(spec());
    expect(await store.remove('drawbridge-dev-a')).toEqual({ removed: true, clearedCurrentContext: false });
    expect(await tree()).toEqual(before);
    expect(await getCurrentContext(dir)).toBe('theirs');
    expect(await store.remove('drawbridge-dev-a')).toEqual({ removed: false, clearedCurrentContext: false });
  });

  it('removing the current context clears currentContext (as `docker context rm -f` does)', async () => {
    await store.write(spec());
    await store.use('drawbridge-dev-a', {});
    expect(await store.remove('drawbridge-dev-a')).toEqual({ removed: true, clearedCurrentContext: true });
    expect(await getCurrentContext(dir)).toBe('default');
    expect(await readdir(dir)).toEqual(['config.json']); // the store dirs we created are gone
  });

  it('use() switches currentContext and reports what would override it', async () => {
    await store.write(spec());
    await writeFile(join(dir, 'config.json'), JSON.stringify({ credsStore: 'pass', currentContext: 'theirs' }));
    const result = await store.use('drawbridge-dev-a', { DOCKER_HOST: 'unix:///var/run/docker.sock' });
    expect(result).toMatchObject({ previous: 'theirs', effective: 'default' });
    expect(result.warnings).toHaveLength(1);
    expect(result.warnings[0]).toMatchObject({ variable: 'DOCKER_HOST', fix: 'unset DOCKER_HOST' });
    expect(result.warnings[0]!.message).toContain('unset DOCKER_HOST');
    expect(JSON.parse(await readFile(join(dir, 'config.json'), 'utf8'))).toEqual({ credsStore: 'pass', currentContext: 'drawbridge-dev-a' });
    expect(await store.use('drawbridge-dev-a', {})).toEqual({ previous: 'drawbridge-dev-a', effective: 'drawbridge-dev-a', warnings: [] });
    expect((await store.use('default', {})).effective).toBe('default');
    expect(JSON.parse(await readFile(join(dir, 'config.json'), 'utf8'))).toEqual({ credsStore: 'pass' });
  });

  it('use() of a missing context fails and changes nothing', async () => {
    await expect(store.use('drawbridge-nope', {})).rejects.toMatchObject({ code: 'CONTEXT_NOT_FOUND' });
    expect(await readdir(dir)).toEqual([]);
  });

  it.each([
    ['PKCS#8', '-----BEGIN ENCRYPTED PRIVATE KEY-----\nx\n-----END ENCRYPTED PRIVATE KEY-----\n'],
    ['legacy PEM', '-----BEGIN EC PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\nDEK-Info: AES-128-CBC,00\n\nx\n-----END EC PRIVATE KEY-----\n'],
  ])('refuses an encrypted private key (%s): the CLI would', async (_, key) => {
    await expect(store.write(spec('drawbridge-dev-a', { tls: { ...TLS, key } }))).rejects.toMatchObject({ code: 'TLS_KEY_ENCRYPTED' });
    expect(await readdir(dir)).toEqual([]);
  });
});
