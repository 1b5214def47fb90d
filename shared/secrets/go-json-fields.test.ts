import { describe, expect, test } from 'vitest';
import { refuseDuplicateKeys } from './go-json-fields.js';

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
