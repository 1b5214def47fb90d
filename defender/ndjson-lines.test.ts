import { describe, expect, it } from 'vitest';
import { NdjsonError, NdjsonLines, parsePolicyLine } from './ndjson-lines.js';

const snapshotLine = JSON.stringify({
  type: 'snapshot',
  snapshot: { version: 3, issuedAt: '2025-01-01T00:00:00Z', rules: [], revokedSerials: ['ab'], listener: { type: 'unix', path: '/run/drawbridge.sock' } },
});

describe('NdjsonLines', () => {
  it('returns lines whole however the bytes are split', () => {
    const text = `${snapshotLine}\n{"type":"heartbeat","version":3}\n\n{"type":"heartbeat","version":4}\r\n`;
    const bytes = Buffer.from(text);
    for (const size of [1, 2, 3, 7, 64, bytes.length]) {
      const reader = new NdjsonLines();
      const lines: string[] = [];
      for (let i = 0; i < bytes.length; i += size) lines.push(...reader.push(bytes.subarray(i, i + size)));
      expect(lines).toEqual([snapshotLine, '{"type":"heartbeat","version":3}', '{"type":"heartbeat","version":4}']);
      expect(reader.buffered).toBe(0);
    }
  });

  it('keeps a UTF-8 character split across chunks intact', () => {
    const line = '{"type":"x","name":"zoë 🚀"}';
    const bytes = Buffer.from(`${line}\n`);
    const split = bytes.indexOf(Buffer.from('🚀')) + 2; // in the middle of the 4-byte emoji
    const reader = new NdjsonLines();
    expect(reader.push(bytes.subarray(0, split))).toEqual([]);
    expect(reader.buffered).toBe(split);
    expect(reader.push(bytes.subarray(split))).toEqual([line]);
  });

  it('does not keep a reference to the caller\'s chunk', () => {
    const reader = new NdjsonLines();
    const chunk = Buffer.from('{"a":');
    reader.push(chunk);
    chunk.fill(0x20);
    expect(reader.push(Buffer.from('1}\n'))).toEqual(['{"a":1}']);
  });

  it('refuses a line over the limit, complete or not', () => {
    expect(() => new NdjsonLines(10).push(Buffer.from('0123456789A\n'))).toThrow(NdjsonError);
    const reader = new NdjsonLines(10);
    reader.push(Buffer.from('01234'));
    expect(() => reader.push(Buffer.from('56789AB'))).toThrow(/longer than 10 bytes/);
  });
});

describe('parsePolicyLine', () => {
  it('accepts snapshots and heartbeats of the contract', () => {
    expect(parsePolicyLine(snapshotLine)).toMatchObject({ type: 'snapshot', snapshot: { version: 3 } });
    expect(parsePolicyLine('{"type":"heartbeat","version":9}')).toEqual({ type: 'heartbeat', version: 9 });
  });

  it.each([
    ['not JSON', '{"type":', /not JSON/],
    ['an unknown type', '{"type":"hello"}', /contract/],
    ['a snapshot without rules', JSON.stringify({ type: 'snapshot', snapshot: { version: 1, issuedAt: 'x', revokedSerials: [], listener: { type: 'tcp', address: ':9998' } } }), /snapshot\.rules/],
    ['an upper-case serial', snapshotLine.replace('"ab"', '"AB"'), /revokedSerials/],
    ['an extra field', '{"type":"heartbeat","version":1,"extra":true}', /contract/],
    ['version 0', '{"type":"heartbeat","version":0}', /version/],
  ])('refuses %s', (_, text, reason) => {
    expect(() => parsePolicyLine(text)).toThrow(NdjsonError);
    expect(() => parsePolicyLine(text)).toThrow(reason);
  });
});
