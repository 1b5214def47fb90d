import { describe, expect, it } from 'vitest';
import { answerHead, requestHead } from './http-head.js';

describe('heads the Defender writes', () => {
  it.each([
    ['a target carrying a second request line', () => requestHead('GET', '/a HTTP/1.1\r\nX: y', [])],
    ['a value carrying a header line', () => requestHead('GET', '/a', ['X-A', 'v\r\nContent-Length: 5'])],
    ['a name with LF', () => requestHead('GET', '/a', ['X-A\n', 'v'])],
    ['a value with NUL', () => requestHead('GET', '/a', ['X-A', 'v\0'])],
    ['a name with a colon', () => requestHead('GET', '/a', ['X:A', 'v'])],
    ['an empty name', () => requestHead('GET', '/a', ['', 'v'])],
    ['a method with a space', () => requestHead('GET /b', '/a', [])],
    ['an answer header value with CR LF', () => answerHead(200, 'OK', ['Content-Type', 'a\r\n\r\nHTTP/1.1 200 OK'])],
    ['a status message with LF', () => answerHead(200, 'OK\nX: y', [])],
    ['a status that is not three digits', () => answerHead(2000, 'OK', [])],
  ])('refuses %s', (_what, write) => {
    expect(write).toThrow(/unsafe/);
  });

  it('writes names and values as given, in order', () => {
    expect(requestHead('GET', '/a', ['Host', 'docker', 'x-Two', 'b'])).toBe('GET /a HTTP/1.1\r\nHost: docker\r\nx-Two: b\r\n\r\n');
    expect(answerHead(404, 'Not Found', ['Content-Length', '0'], 'Connection: close\r\n')).toBe('HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n');
  });
});
