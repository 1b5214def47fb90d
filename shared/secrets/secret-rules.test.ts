import { describe, expect, test } from 'vitest';
import { RulesError } from '../policy/access-rules.js';
import { compileSecretRules, imageNames, matchSecretRules, secretRefKey, validateSecretRules, type ContainerTarget } from './secret-rules.js';

const env = (over: Record<string, unknown> = {}) => ({ name: 'db', mode: 'env', secrets: [{ name: 'DB_PASSWORD', store: 'vault', path: 'apps/db', key: 'password' }], ...over });

function problems(input: unknown): string[] {
  try {
    validateSecretRules(input);
  } catch (e) {
    if (e instanceof RulesError) return e.problems.map((p) => `${p.field ?? '-'}: ${p.message}`);
    throw e;
  }
  return [];
}

describe('validateSecretRules', () => {
  test('defaults: scope everything, no leak path allowed, file access root only for files', () => {
    const [e, f] = validateSecretRules([env(), { name: 'certs', mode: 'file', secrets: [{ name: 'tls.key', store: 's', path: 'p' }] }]);
    expect(e).toEqual({ ...env(), fileAccess: undefined, scope: { images: ['*'], labels: ['*'], containers: ['*'], hosts: ['*'] }, allow: [] });
    expect(f!.fileAccess).toBe('root');
  });

  test.each([
    ['not a list', { rules: [] }, ['-: secret rules must be a list']],
    ['mode', [env({ mode: 'tmpfs' })], ['mode: must be "env" or "file"']],
    ['env name', [env({ secrets: [{ name: '9LIVES', store: 's', path: 'p' }] })], ['secrets.0.name: must be an environment variable name (letters, digits, _; not starting with a digit)']],
    ['file name with a slash', [{ name: 'f', mode: 'file', secrets: [{ name: 'a/b', store: 's', path: 'p' }] }], ['secrets.0.name: must be a file name (letters, digits, . _ -; no / and no leading .)']],
    ['file name ..', [{ name: 'f', mode: 'file', secrets: [{ name: '..', store: 's', path: 'p' }] }], ['secrets.0.name: must be a file name (letters, digits, . _ -; no / and no leading .)']],
    ['duplicate secret name', [env({ secrets: [{ name: 'A', store: 's', path: 'p' }, { name: 'A', store: 's', path: 'q' }] })], ["secrets.1.name: 'A' is given twice in this rule"]],
    ['fileAccess on env', [env({ fileAccess: 'all' })], ['fileAccess: only applies to mode "file"']],
    ['unknown field', [env({ scopes: {} })], ['-: unknown field(s): scopes']],
    ['unknown scope field', [env({ scope: { image: ['x'] } })], ['scope: unknown field(s): image']],
    ['unknown leak path', [env({ allow: ['inspect'] })], ['allow.0: must be one of commit, export, copy']],
    ['no secrets', [env({ secrets: [] })], ['secrets: must list at least one secret']],
    ['store name', [env({ secrets: [{ name: 'A', store: 'a b', path: 'p' }] })], ['secrets.0.store: must name a secret store (letters, digits, . _ -)']],
    ['rule name becomes a label value', [env({ name: 'db creds' })], ['name: must be letters, digits, . _ - (it becomes a label value)']],
    ['duplicate rule names', [env(), env({ name: 'DB' })], ['name: duplicates the name of secret rule #1']],
  ])('%s', (_, input, expected) => {
    expect(problems(input)).toEqual(expected);
  });
});

describe('matchSecretRules', () => {
  const rules = compileSecretRules(
    validateSecretRules([
      env({ name: 'billing', scope: { images: ['registry.example.com/billing/*'], hosts: ['prod-*'] } }),
      env({ name: 'labelled', scope: { labels: ['team=payments'] } }),
      env({ name: 'named', scope: { containers: ['web-*', '-web-test'] } }),
      env({ name: 'postgres', scope: { images: ['postgres:latest'] } }),
      env({ name: 'everywhere' }),
    ]),
  );
  const target = (over: Partial<ContainerTarget>): ContainerTarget => ({ image: 'busybox', labels: {}, name: '', host: 'dev-a', ...over });
  const names = (t: ContainerTarget) => matchSecretRules(rules, t).map((r) => r.name);

  test.each([
    ['nothing special: only the rule for everything', target({}), ['everywhere']],
    ['image and host both needed', target({ image: 'registry.example.com/billing/api:1.2', host: 'prod-eu' }), ['billing', 'everywhere']],
    ['image right, host wrong', target({ image: 'registry.example.com/billing/api:1.2', host: 'dev-a' }), ['everywhere']],
    ['label key=value', target({ labels: { team: 'payments', x: 'y' } }), ['labelled', 'everywhere']],
    ['label value differs', target({ labels: { team: 'payment' } }), ['everywhere']],
    ['container name glob', target({ name: 'web-1' }), ['named', 'everywhere']],
    ['container name excluded', target({ name: 'web-test' }), ['everywhere']],
    ['no name given: a name pattern does not match', target({ name: '' }), ['everywhere']],
    ['leading slash of a name is ignored', target({ name: '/web-2' }), ['named', 'everywhere']],
    ['implicit :latest', target({ image: 'postgres' }), ['postgres', 'everywhere']],
    ['explicit tag other than latest', target({ image: 'postgres:16' }), ['everywhere']],
    ['case-insensitive like access rules', target({ image: 'POSTGRES:LATEST' }), ['postgres', 'everywhere']],
  ])('%s', (_, t, expected) => {
    expect(names(t)).toEqual(expected);
  });

  test('image names: a registry port is not a tag; digests are references', () => {
    expect(imageNames('localhost:5000/app')).toEqual(['localhost:5000/app', 'localhost:5000/app:latest']);
    expect(imageNames('app@sha256:abc')).toEqual(['app@sha256:abc']);
    expect(imageNames('app:1')).toEqual(['app:1']);
  });

  test('secret ref keys tell a missing key from an empty path', () => {
    expect(secretRefKey({ store: 's', path: 'p' })).not.toBe(secretRefKey({ store: 's', path: 'p', key: 'k' }));
    expect(secretRefKey({ store: 's', path: 'p', key: undefined })).toBe(secretRefKey({ store: 's', path: 'p' }));
  });
});
