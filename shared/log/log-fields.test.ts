import { describe, expect, test } from 'vitest';
import { logFields, logValue } from './log-fields.js';

describe('log field values', () => {
  test.each([
    ['alice', 'alice'],
    ['two words', '"two words"'],
    ['a=b', '"a=b"'],
    ['say "hi"', '"say \\"hi\\""'],
    ['x\u001b[1A\u001b[2K', '"x\\u001b[1A\\u001b[2K"'], // a terminal escape with no space in it
    ['line\nbreak', '"line\\nbreak"'],
    ['evil\u202egnp.exe', '"evil\\u202egnp.exe"'], // right-to-left override
    ['a\u2028b', '"a\\u2028b"'],
    ['c:\\path', '"c:\\\\path"'],
  ])('%j → %s', (value, written) => expect(logValue(value)).toBe(written));

  test('numbers, booleans and null as they are; undefined fields left out', () => {
    expect(logFields({ n: 3, ok: true, none: null, gone: undefined, user: 'bob' })).toBe(' n=3 ok=true none=null user=bob');
    expect(logFields({})).toBe('');
  });
});
