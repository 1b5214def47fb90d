import { describe, expect, test } from 'vitest';
import { markerLabels, readMarkers, refuseForgedLabels, refuseForgedServiceLabels, SECRET_LABELS } from './secret-labels.js';

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

  test.each([
    [{ TaskTemplate: { ContainerSpec: { Image: 'x', Labels: { [SECRET_LABELS.rules]: 'db' } } } }],
    [{ tasktemplate: { containerspec: { labels: { [SECRET_LABELS.allow]: 'copy' } } } }], // dockerd folds field names
  ])('a service spec whose task containers would carry markers is refused: %j', (spec) => {
    expect(() => refuseForgedServiceLabels(spec)).toThrow(/reserved for the Drawbridge Defender/);
  });

  test.each([
    [{ Name: 's', Labels: { app: 'x' }, TaskTemplate: { ContainerSpec: { Image: 'x', Labels: { app: 'x' } } } }],
    [{ Name: 's' }],
    [{ TaskTemplate: { ContainerSpec: null } }],
    [[]],
  ])('a service spec without markers on its task containers is not refused: %j', (spec) => {
    expect(() => refuseForgedServiceLabels(spec)).not.toThrow();
  });

  test('ContainerSpec.Labels given under two spellings is refused, not guessed', () => {
    expect(() => refuseForgedServiceLabels({ TaskTemplate: { ContainerSpec: { Labels: { app: 'x' }, labels: { [SECRET_LABELS.rules]: 'db' } } } })).toThrow(/TaskTemplate\.ContainerSpec\.Labels twice/);
  });
});
