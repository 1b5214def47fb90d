/**
 * The Defender's own reading of request body framing: every encoding is fed whole, then split at every byte, then
 * one byte at a time; the data, where the body ends and the error must not depend on how the bytes arrived.
 */
import { describe, expect, it } from 'vitest';
import { bodyFramer, BodyFramingError, type BodyFramer } from './body-framer.js';

const b = (s: string): Buffer => Buffer.from(s, 'latin1');
const CHUNKED = ['Transfer-Encoding', 'chunked'];

/** Feeds `reads` one after the other as a connection would: the data, the bytes after the body, or the error. */
function feed(framer: BodyFramer, reads: Buffer[]): { data: string; after: string; pieces: number } | { error: string } {
  let data = '';
  let after = '';
  let pieces = 0;
  try {
    for (const read of reads) {
      if (framer.done) {
        after += read.toString('latin1');
        continue;
      }
      const taken = framer.take(read, (piece) => {
        expect(piece.length).toBeGreaterThan(0);
        data += piece.toString('latin1');
        pieces++;
      });
      after += read.subarray(taken).toString('latin1');
      if (!framer.done) expect(taken).toBe(read.length);
    }
  } catch (err) {
    expect(err).toBeInstanceOf(BodyFramingError);
    return { error: (err as BodyFramingError).code };
  }
  return framer.done ? { data, after, pieces } : { error: 'incomplete' };
}

/** The same bytes whole, split in two at every position, and one byte at a time. */
function everyWay(headers: string[], bytes: string): Array<{ data: string; after: string } | { error: string }> {
  const all = b(bytes);
  const ways: Buffer[][] = [[all], Array.from(all, (_, i) => all.subarray(i, i + 1))];
  for (let i = 1; i < all.length; i++) ways.push([all.subarray(0, i), all.subarray(i)]);
  return ways.map((reads) => {
    const outcome = feed(bodyFramer(headers, 64)!, reads);
    return 'data' in outcome ? { data: outcome.data, after: outcome.after } : outcome;
  });
}

describe('bodyFramer', () => {
  it.each([
    ['one Content-Length', ['Content-Length', '5'], 'length'],
    ['Content-Length with leading zeros', ['content-length', '005'], 'length'],
    ['chunked, any case, with spaces around', ['transfer-encoding', ' Chunked '], 'chunked'],
    ['no framing header', ['Host', 'x'], null],
    ['Content-Length 0', ['Content-Length', '0'], null],
    ['two Content-Lengths', ['Content-Length', '5', 'Content-Length', '5'], null],
    ['a Content-Length that is not digits', ['Content-Length', '5x'], null],
    ['a Content-Length over 15 digits', ['Content-Length', '1234567890123456'], null],
    ['Content-Length and chunked', ['Content-Length', '5', ...CHUNKED], null],
    ['two Transfer-Encodings', [...CHUNKED, ...CHUNKED], null],
    ['a coding before chunked', ['Transfer-Encoding', 'gzip, chunked'], null],
    ['a form-encoded body (refused when handled)', ['Content-Length', '5', 'Content-Type', 'application/x-www-form-urlencoded'], null],
  ])('%s → %s', (_name, headers, kind) => {
    const framer = bodyFramer(headers, 64);
    if (kind === null) expect(framer).toBeNull();
    else expect(feed(framer!, [b(kind === 'length' ? '12345after' : '5\r\n12345\r\n0\r\n\r\nafter')])).toEqual({ data: '12345', after: 'after', pieces: 1 });
  });

  it('counts a Content-Length body off the reads, as slices of them', () => {
    const framer = bodyFramer(['Content-Length', '10'], 64)!;
    const reads = [b('abc'), b('defg'), b('hijGET / HTTP/1.1')];
    const pieces: Buffer[] = [];
    const taken = reads.map((read) => (framer.done ? 0 : framer.take(read, (p) => pieces.push(p))));
    expect(taken).toEqual([3, 4, 3]);
    expect(pieces.map((p, i) => p.buffer === reads[i]!.buffer)).toEqual([true, true, true]);
    expect(Buffer.concat(pieces).toString()).toBe('abcdefghij');
    expect(framer.done).toBe(true);
  });

  describe('chunks', () => {
    it.each([
      ['one chunk', '5\r\nhello\r\n0\r\n\r\n', 'hello'],
      ['several chunks, hex sizes in both cases', '3\r\nabc\r\na\r\n0123456789\r\nA\r\nABCDEFGHIJ\r\n0\r\n\r\n', 'abc0123456789ABCDEFGHIJ'],
      ['an empty body', '0\r\n\r\n', ''],
      ['extensions', '3;name=value;flag\r\nabc\r\n0;last\r\n\r\n', 'abc'],
      ['trailers', '3\r\nabc\r\n0\r\nX-Sum: 1\r\nX-Other: 2\r\n\r\n', 'abc'],
      ['a size with leading zeros', '0003\r\nabc\r\n0\r\n\r\n', 'abc'],
      ['data holding CRLFs and chunk-like bytes', '7\r\n\r\n0\r\n\r\n\r\n0\r\n\r\n', '\r\n0\r\n\r\n'],
    ])('%s: the same data and end however the bytes arrive', (_name, encoded, data) => {
      const outcomes = everyWay(CHUNKED, `${encoded}GET /next HTTP/1.1\r\n\r\n`);
      expect(outcomes.filter((o) => JSON.stringify(o) !== JSON.stringify({ data, after: 'GET /next HTTP/1.1\r\n\r\n' }))).toEqual([]);
    });

    it.each([
      ['a size that is not hex', '3\r\nabc\r\nzz\r\n', 'HPE_INVALID_CHUNK_SIZE'],
      ['no size', '\r\nabc\r\n', 'HPE_INVALID_CHUNK_SIZE'],
      ['a space after the size', '3 \r\nabc\r\n0\r\n\r\n', 'HPE_INVALID_CHUNK_SIZE'],
      ['a negative size', '-3\r\nabc\r\n0\r\n\r\n', 'HPE_INVALID_CHUNK_SIZE'],
      ['a size over 12 hex digits', '0000000000003\r\nabc\r\n0\r\n\r\n', 'HPE_INVALID_CHUNK_SIZE'],
      ['a bare LF after the size', '3\nabc\r\n0\r\n\r\n', 'HPE_INVALID_CHUNK_SIZE'],
      ['a CR not followed by LF after the size', '3\rabc\r\n0\r\n\r\n', 'HPE_STRICT'],
      ['data longer than its size', '3\r\nabcd\r\n0\r\n\r\n', 'HPE_STRICT'],
      ['data shorter than its size', '3\r\nab\r\n0\r\n\r\n', 'HPE_STRICT'],
      ['a bare LF after the data', '3\r\nabc\n0\r\n\r\n', 'HPE_STRICT'],
      ['a LF in an extension', '3;a\nb\r\nabc\r\n0\r\n\r\n', 'HPE_STRICT'],
      ['extensions over 16 KiB', `3;${'x'.repeat(16 * 1024 + 1)}\r\nabc\r\n0\r\n\r\n`, 'HPE_CHUNK_EXTENSIONS_OVERFLOW'],
      ['a bare LF in a trailer', '0\r\nX-A: 1\nX-B: 2\r\n\r\n', 'HPE_INVALID_HEADER_TOKEN'],
      ['a bare LF ending the trailers', '0\r\n\n', 'HPE_INVALID_HEADER_TOKEN'],
      ['a CR not followed by LF at the end', '0\r\n\rX', 'HPE_STRICT'],
      ['trailers over the limit', `0\r\nX-A: ${'y'.repeat(64)}\r\n\r\n`, 'HPE_HEADER_OVERFLOW'],
      ['no last chunk', '3\r\nabc\r\n', 'incomplete'],
      ['no empty line after the last chunk', '3\r\nabc\r\n0\r\n', 'incomplete'],
    ])('refuses %s (%s) however the bytes arrive', (_name, encoded, code) => {
      const outcomes = everyWay(CHUNKED, encoded);
      expect(outcomes.filter((o) => JSON.stringify(o) !== JSON.stringify({ error: code }))).toEqual([]);
    });

    it('hands each run of data as a slice of the read it came in', () => {
      const read = b('3\r\nabc\r\n4\r\ndefg\r\n0\r\n\r\n');
      const pieces: Buffer[] = [];
      expect(bodyFramer(CHUNKED, 64)!.take(read, (p) => pieces.push(p))).toBe(read.length);
      expect(pieces.map((p) => [p.toString(), p.buffer === read.buffer])).toEqual([['abc', true], ['defg', true]]);
    });
  });
});
