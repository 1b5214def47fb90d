import { describe, expect, test } from 'vitest';
import { hostSettingsOf, hostSettingsUnderHostConfig, refuseDuplicateKeys, type JsonObject } from './go-json-fields.js';

describe('duplicate keys (Go merges repeated objects)', () => {
  test.each([
    ['{"HostConfig":{"Binds":["/a:/b"]},"HostConfig":{}}', 'HostConfig'],
    ['{"Labels":{"a":"1","a":"2"}}', 'a'],
    ['{"A":[{"x":1,"y":{"z":[1,{"q":1,"q":2}]}}]}', 'q'],
    ['{"\\u0041":1,"A":2}', 'A'],
  ])('%s → refused', (text, key) => expect(() => refuseDuplicateKeys(text)).toThrow(`gives '${key}' twice in one object`));

  test.each([
    ['{"a":{"a":{"a":1}},"b":[{"a":1},{"a":2}]}'],
    ['{"s":"\\"a\\":1,\\"a\\"","a":"{\\"a\\":1}"}'],
    ['{"a":"x","A":"y"}'], // case variants are fieldKey's business (maps keep both)
    ['[{"a":1},{"a":1}]'],
    ['"a"'],
    ['{}'],
  ])('%s → accepted', (text) => expect(() => refuseDuplicateKeys(text)).not.toThrow());
});

describe('host settings of a create body (HostConfig, or the top level when it is missing or null)', () => {
  test.each<[string, JsonObject, string | null, string]>([
    ['HostConfig', { Image: 'i', HostConfig: { Binds: ['/a:/b'] }, Binds: ['/c:/d'] }, 'HostConfig', '["/a:/b"]'],
    ['hostconfig (any case)', { hostconfig: { Binds: ['/a:/b'] } }, 'hostconfig', '["/a:/b"]'],
    ['no HostConfig', { Image: 'i', Binds: ['/c:/d'] }, null, '["/c:/d"]'],
    ['HostConfig null', { Image: 'i', HostConfig: null, Binds: ['/c:/d'] }, null, '["/c:/d"]'],
  ])('%s', (_, body, key, binds) => {
    const hs = hostSettingsOf(body)!;
    expect(hs.key).toBe(key);
    expect(JSON.stringify(hs.object.Binds)).toBe(binds);
  });

  test('a HostConfig that is not an object gives none (dockerd refuses the body)', () => {
    expect(hostSettingsOf({ HostConfig: 'x' })).toBeNull();
    expect(hostSettingsOf({ HostConfig: [] })).toBeNull();
  });

  test('moving top-level host settings under HostConfig keeps the ContainerConfig fields (any case) where they are', () => {
    const body = { image: 'i', Cmd: ['sh'], ENV: ['A=1'], Labels: { a: 'b' }, NetworkingConfig: {}, HostConfig: null, Binds: ['/c:/d'], PidMode: 'x', Unknown: 1 };
    const { body: moved, key } = hostSettingsUnderHostConfig(body, hostSettingsOf(body)!);
    expect(key).toBe('HostConfig');
    expect(moved).toEqual({ image: 'i', Cmd: ['sh'], ENV: ['A=1'], Labels: { a: 'b' }, NetworkingConfig: {}, HostConfig: { Binds: ['/c:/d'], PidMode: 'x', Unknown: 1 } });
    const inner = { HostConfig: { Binds: [] }, Binds: ['/c:/d'] };
    expect(hostSettingsUnderHostConfig(inner, hostSettingsOf(inner)!)).toEqual({ body: inner, key: 'HostConfig' });
  });
});
