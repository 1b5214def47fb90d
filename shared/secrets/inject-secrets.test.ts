import { describe, expect, test } from 'vitest';
import { currentFileSecrets, createTarget, injectSecrets, requestedMountTargets, valueMap, type SecretValueEntry } from './inject-secrets.js';
import { readMarkers, SECRET_LABELS } from './secret-labels.js';
import { compileSecretRules, matchSecretRules, validateSecretRules, type SecretRuleInput } from './secret-rules.js';

const RULES: SecretRuleInput[] = [
  { name: 'db', mode: 'env', secrets: [{ name: 'DB_PASSWORD', store: 'vault', path: 'apps/db', key: 'password' }], scope: { images: ['billing*'] } },
  { name: 'tls', mode: 'file', fileAccess: 'all', secrets: [{ name: 'tls.key', store: 'vault', path: 'apps/tls' }], scope: { labels: ['tls=yes'] }, allow: ['copy'] },
  { name: 'api', mode: 'env', secrets: [{ name: 'DB_PASSWORD', store: 'vault', path: 'other' }, { name: 'API_KEY', store: 'aws', path: 'k' }], allow: ['copy', 'commit'] },
  { name: 'root-file', mode: 'file', secrets: [{ name: 'token', store: 'vault', path: 'apps/token' }], scope: { containers: ['web*'] } },
];
const rules = validateSecretRules(RULES);
const compiled = compileSecretRules(rules);
const VALUES: SecretValueEntry[] = [
  { store: 'vault', path: 'apps/db', key: 'password', value: 's3cr3t-db' },
  { store: 'vault', path: 'apps/tls', value: 'KEY-PEM' },
  { store: 'vault', path: 'other', value: 'never-used' },
  { store: 'aws', path: 'k', value: 'api-value' },
  { store: 'vault', path: 'apps/token', value: 'tok' },
];
const values = valueMap(VALUES);
const instance = { id: 'a'.repeat(32), hostDir: '/dev/shm/db/aaaa' };

function run(body: Record<string, unknown>, name = '', vals = values) {
  const target = createTarget(body, { name, host: 'dev-a' });
  const matched = matchSecretRules(compiled, target);
  const out = injectSecrets(body, target, matched, vals, instance);
  return { ...out, json: JSON.parse(out.body) as Record<string, any> };
}

describe('injectSecrets', () => {
  test.each([
    ['no Env', { Image: 'billing' }, ['DB_PASSWORD=s3cr3t-db', 'API_KEY=api-value']],
    ['overrides NAME=', { Image: 'billing', Env: ['A=1', 'DB_PASSWORD=mine', 'B=2'] }, ['A=1', 'B=2', 'DB_PASSWORD=s3cr3t-db', 'API_KEY=api-value']],
    ['overrides bare NAME', { Image: 'billing', Env: ['DB_PASSWORD', 'X=DB_PASSWORD=1'] }, ['X=DB_PASSWORD=1', 'DB_PASSWORD=s3cr3t-db', 'API_KEY=api-value']],
    ['keeps a lowercase name (env is case-sensitive)', { Image: 'billing', Env: ['db_password=x'] }, ['db_password=x', 'DB_PASSWORD=s3cr3t-db', 'API_KEY=api-value']],
    ['earlier rule wins for the same name', { Image: 'other' }, ['DB_PASSWORD=never-used', 'API_KEY=api-value']],
  ])('env: %s', (_what, body, env) => {
    const { json, plan } = run(body);
    expect(json.Env).toEqual(env);
    expect(plan.env).toEqual(env.filter((e) => /^(DB_PASSWORD|API_KEY)=/.test(e)).map((e) => e.split('=')[0]));
  });

  test.each([
    ['Env', { Image: 'billing', env: ['DB_PASSWORD=x'] }, 'env'],
    ['ENV', { Image: 'billing', ENV: ['DB_PASSWORD=x'] }, 'ENV'],
    ['labels', { image: 'x', labels: { tls: 'yes' } }, 'labels'],
    ['Labelſ (long s folds to s as in Go)', { Image: 'x', 'Labelſ': { tls: 'yes' } }, 'Labelſ'],
  ])('fields are found case-insensitively: %s', (_what, body, key) => {
    const { json } = run(body as Record<string, unknown>);
    expect(json[key]).toBeDefined();
    expect(Object.keys(json).filter((k) => k.toLowerCase().replace('ſ', 's') === key.toLowerCase().replace('ſ', 's'))).toEqual([key]);
  });

  test.each([
    ['Env twice', { Image: 'billing', Env: [], env: ['DB_PASSWORD=x'] }, /gives Env twice \(as 'Env' and 'env'\)/],
    ['Image twice', { Image: 'billing', image: 'x' }, /gives Image twice/],
    ['Labels twice', { Image: 'x', Labels: {}, LABELS: { tls: 'yes' } }, /gives Labels twice/],
    ['HostConfig twice', { Image: 'x', Labels: { tls: 'yes' }, HostConfig: {}, hostconfig: { Binds: ['/:/run'] } }, /gives HostConfig twice/],
    ['Binds twice', { Image: 'x', Labels: { tls: 'yes' }, HostConfig: { Binds: [], binds: ['/h:/run'] } }, /gives HostConfig.Binds twice/],
    ['Mount Target twice', { Image: 'x', Labels: { tls: 'yes' }, HostConfig: { Mounts: [{ Type: 'bind', Target: '/a', target: '/run' }] } }, /Mounts\[\]\.Target twice/],
  ])('two spellings of a field read → 400: %s', (_what, body, message) => {
    expect(() => run(body)).toThrow(message);
    try {
      run(body);
    } catch (e) {
      expect((e as { status: number }).status).toBe(400);
    }
  });

  test.each([
    ['Labels', { Image: 'x', Labels: { 'io.drawbridge.secrets.rules': 'x' } }],
    ['any case', { Image: 'x', Labels: { 'IO.Drawbridge.anything': '' } }],
    ['even when no rule matches', { Image: 'nothing', labels: { 'io.drawbridge.secrets.env': '' } }],
  ])('forged marker labels → 400: %s', (_what, body) => {
    expect(() => run(body)).toThrow(/reserved for the Drawbridge Defender/);
  });

  test('file secrets: a read-only bind at /run/secrets, marker labels, modes', () => {
    const { json, plan, files } = run({ Image: 'x', Labels: { tls: 'yes' }, HostConfig: { Mounts: [{ Type: 'volume', Target: '/data' }] } }, 'web-1');
    expect(json.HostConfig.Mounts).toEqual([{ Type: 'volume', Target: '/data' }, { Type: 'bind', Source: instance.hostDir, Target: '/run/secrets', ReadOnly: true }]);
    expect(plan).toMatchObject({ rules: ['tls', 'api', 'root-file'], files: ['tls.key', 'token'], fileModes: { 'tls.key': 0o444, token: 0o400 }, instance: instance.id, allow: [] }); // root-file allows nothing: the intersection
    expect(files).toEqual([{ name: 'tls.key', mode: 0o444, value: 'KEY-PEM' }, { name: 'token', mode: 0o400, value: 'tok' }]);
    expect(json.Labels).toMatchObject({ tls: 'yes', [SECRET_LABELS.rules]: 'tls,api,root-file', [SECRET_LABELS.files]: 'tls.key,token', [SECRET_LABELS.env]: 'DB_PASSWORD,API_KEY', [SECRET_LABELS.allow]: '' });
    expect(JSON.stringify(plan)).not.toMatch(/KEY-PEM|tok\b|never-used|api-value/);
  });

  test.each([
    ['Binds src:dst', { Binds: ['/host:/run'] }, '/run'],
    ['Binds dst:mode', { Binds: ['/run/secrets:ro'] }, '/run/secrets'],
    ['Binds src:dst:mode below', { Binds: ['vol:/run/secrets/x:rw'] }, '/run/secrets/x'],
    ['Mounts, unclean', { Mounts: [{ Type: 'tmpfs', Target: '/run/./secrets/' }] }, '/run/./secrets/'],
    ['mounts lowercase', { mounts: [{ type: 'tmpfs', target: '//run' }] }, '//run'],
    ['Tmpfs', { Tmpfs: { '/run': 'rw' } }, '/run'],
    ['Volumes', { Volumes: undefined, Tmpfs: { '/run/secrets/../secrets': '' } }, '/run/secrets/../secrets'],
  ])('file secrets refuse a request that mounts at /run or /run/secrets: %s', (_what, hostConfig, where) => {
    expect(() => run({ Image: 'x', Labels: { tls: 'yes' }, HostConfig: hostConfig })).toThrow(`also mounts something at ${where}`);
  });

  test('anonymous Volumes count as mounts; /run/other and /var/run are fine', () => {
    expect(() => run({ Image: 'x', Labels: { tls: 'yes' }, Volumes: { '/run/secrets': {} } })).toThrow(/mounts something at \/run\/secrets/);
    expect(() => run({ Image: 'x', Labels: { tls: 'yes' }, Volumes: { '/run/other': {} }, HostConfig: { Binds: ['/run:/var/run'] } })).not.toThrow();
    expect(requestedMountTargets({ Volumes: { '/v': {} }, HostConfig: { Binds: ['/a', '/b:/c', '/d:ro'], Tmpfs: { '/t': '' }, Mounts: [{ Target: '/m' }, null] } })).toEqual(['/v', '/a', '/c', '/d', '/t', '/m']);
  });

  test('env secrets do not care about mounts at /run', () => {
    expect(run({ Image: 'billing', HostConfig: { Tmpfs: { '/run': '' } } }).json.Env).toContain('DB_PASSWORD=s3cr3t-db');
  });

  test('fails closed (503) naming the rule and secret when a value is missing, never a value', () => {
    const partial = valueMap(VALUES.filter((v) => v.path !== 'k'));
    expect.assertions(3);
    try {
      run({ Image: 'billing' }, '', partial);
    } catch (e) {
      const err = e as { status: number; message: string };
      expect(err.status).toBe(503);
      expect(err.message).toMatch(/secret rule 'api' needs secret 'API_KEY' \(store 'aws'\)/);
      expect(err.message).not.toMatch(/s3cr3t/);
    }
  });

  test('no matching rule: the body keeps its fields, no markers', () => {
    const body = { Image: 'nothing', Env: ['A=1'], HostConfig: { Tmpfs: { '/run': '' } } };
    const out = injectSecrets(body, createTarget(body, { name: '', host: 'h' }), [], values, instance);
    const json = JSON.parse(out.body) as unknown;
    const plan = out.plan;
    expect(json).toEqual({ Image: 'nothing', Env: ['A=1'], HostConfig: { Tmpfs: { '/run': '' } } });
    expect(plan.rules).toEqual([]);
  });
});

describe('currentFileSecrets (start, rotation)', () => {
  const markers = readMarkers({ [SECRET_LABELS.rules]: 'tls,api,root-file', [SECRET_LABELS.files]: 'tls.key,token', [SECRET_LABELS.instance]: instance.id })!;

  test('the files of the rules named in the markers, with the values in force now', () => {
    const rotated = valueMap(VALUES.map((v) => (v.path === 'apps/token' ? { ...v, value: 'tok-2' } : v)));
    expect(currentFileSecrets(markers, rules, rotated)).toEqual([{ name: 'tls.key', mode: 0o444, value: 'KEY-PEM' }, { name: 'token', mode: 0o400, value: 'tok-2' }]);
  });

  test.each([
    ['a rule gone', rules.filter((r) => r.name !== 'root-file'), values, /secret rule 'root-file', which no longer exists/],
    ['a value gone', rules, valueMap(VALUES.filter((v) => v.path !== 'apps/tls')), /secret rule 'tls' needs secret 'tls.key'/],
    ['a file no longer given', rules.map((r) => (r.name === 'tls' ? { ...r, secrets: [{ ...r.secrets[0]!, name: 'other' }] } : r)), valueMap(VALUES), /no longer give file secret\(s\) 'tls.key'/],
  ])('fails closed: %s', (_what, r, v, message) => {
    expect(() => currentFileSecrets(markers, r, v)).toThrow(message);
  });
});
