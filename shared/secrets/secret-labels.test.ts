import { describe, expect, test } from 'vitest';
import { markerLabels, readMarkers, refuseForgedLabels, SECRET_LABELS } from './secret-labels.js';

describe('secret labels', () => {
  test('round trip', () => {
    const m = { rules: ['a', 'b'], env: ['X'], files: ['f.pem'], instance: 'ab'.repeat(16), allow: ['copy' as const] };
    expect(readMarkers(markerLabels(m))).toEqual(m);
  });

  test.each([
    [null, null],
    [{}, null],
    [{ [SECRET_LABELS.rules]: '' }, null],
    [{ [SECRET_LABELS.rules]: 'a', [SECRET_LABELS.instance]: '../../etc' }, { rules: ['a'], env: [], files: [], instance: '', allow: [] }],
    [{ [SECRET_LABELS.rules]: 'a', [SECRET_LABELS.allow]: 'copy,everything' }, { rules: ['a'], env: [], files: [], instance: '', allow: ['copy'] }],
  ])('readMarkers(%j)', (labels, expected) => expect(readMarkers(labels)).toEqual(expected));

  test.each([[{ 'io.drawbridge.x': '' }], [{ 'IO.DRAWBRIDGE.secrets.rules': 'a' }]])('forged %j', (labels) => {
    expect(() => refuseForgedLabels(labels)).toThrow(/reserved for the Drawbridge Defender/);
  });

  test.each([[{ 'io.drawbridgex': '' }], [{ 'com.example': 'io.drawbridge.' }], [null], [undefined]])('not forged %j', (labels) => {
    expect(() => refuseForgedLabels(labels)).not.toThrow();
  });
});
