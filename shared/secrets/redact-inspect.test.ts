import { describe, expect, test } from 'vitest';
import { redactInspect, REDACTED } from './redact-inspect.js';
import { SECRET_LABELS } from './secret-labels.js';

const marked = (env: unknown, labels: Record<string, string> = { [SECRET_LABELS.rules]: 'db', [SECRET_LABELS.env]: 'DB_PASSWORD,API_KEY' }) => ({ Id: 'c1', Config: { Env: env, Labels: labels, Image: 'x' }, HostConfig: {} });

describe('redactInspect', () => {
  test.each([
    ['secret names redacted, others kept', ['PATH=/bin', 'DB_PASSWORD=s3cr3t', 'API_KEY=k=v'], ['PATH=/bin', `DB_PASSWORD=${REDACTED}`, `API_KEY=${REDACTED}`]],
    ['a bare name is redacted too', ['DB_PASSWORD'], [`DB_PASSWORD=${REDACTED}`]],
    ['names are case-sensitive', ['db_password=visible'], ['db_password=visible']],
    ['non-strings left alone', [null, 3, 'API_KEY=x'], [null, 3, `API_KEY=${REDACTED}`]],
  ])('%s', (_what, env, expected) => {
    const out = redactInspect(marked(env)) as ReturnType<typeof marked>;
    expect(out.Config.Env).toEqual(expected);
    expect(out.Config.Labels).toEqual(marked(env).Config.Labels);
  });

  test.each([
    ['no markers', { Config: { Env: ['DB_PASSWORD=x'], Labels: { a: 'b' } } }],
    ['no labels', { Config: { Env: ['DB_PASSWORD=x'], Labels: null } }],
    ['no Config', { Id: 'x' }],
    ['not an object', [1, 2]],
    ['file secrets only', marked(['DB_PASSWORD=x'], { [SECRET_LABELS.rules]: 'f', [SECRET_LABELS.files]: 'DB_PASSWORD' })],
  ])('unchanged (same object): %s', (_what, json) => {
    expect(redactInspect(json)).toBe(json);
  });
});
