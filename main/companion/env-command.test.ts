import { execFileSync } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, expect, it, test } from 'vitest';
import { DockerContextStore } from './docker-context-store.js';
import { envCommand, formatEnvCommand, shellQuote } from './env-command.js';

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'drawbridge env $HOME \'q\' '));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

test.each([
  ['tcp://dev-a.example:9998', 'tcp://dev-a.example:9998'],
  ['/home/u/.docker/contexts/tls/abc/docker', '/home/u/.docker/contexts/tls/abc/docker'],
  ['1', '1'],
  ['', "''"],
  ['/a b', "'/a b'"],
  ['$HOME', "'$HOME'"],
  ["it's", "'it'\\''s'"],
  ['a\nb', "'a\nb'"],
  ['`x`;rm', "'`x`;rm'"],
])('shellQuote(%j) = %s', (value, quoted) => {
  expect(shellQuote(value)).toBe(quoted);
});

test('the export line', () => {
  expect(formatEnvCommand({ DOCKER_HOST: 'tcp://dev-a:9998', DOCKER_TLS_VERIFY: '1', DOCKER_CERT_PATH: '/h/.docker/contexts/tls/x/docker' })).toBe(
    'export DOCKER_HOST=tcp://dev-a:9998 DOCKER_TLS_VERIFY=1 DOCKER_CERT_PATH=/h/.docker/contexts/tls/x/docker\n',
  );
});

it('a real POSIX shell evaluating the output gets exactly the context\'s values back (awkward path)', async () => {
  const store = new DockerContextStore(join(dir, '.docker'));
  const ctx = await store.write({
    name: 'drawbridge-dev-a',
    dockerHost: 'tcp://127.0.0.1:9998',
    tls: { ca: 'c', cert: 'c', key: 'k' },
    drawbridge: { console: 'https://console.example', host: 'dev-a' },
  });
  const line = await envCommand(store, 'dev-a');
  expect(await envCommand(store, 'drawbridge-dev-a')).toBe(line);
  const out = execFileSync('/bin/sh', ['-c', `eval "$LINE"; printf '%s\\0' "$DOCKER_HOST" "$DOCKER_TLS_VERIFY" "$DOCKER_CERT_PATH"`], {
    env: { PATH: process.env.PATH, LINE: line },
    encoding: 'utf8',
  });
  expect(out.split('\0').slice(0, 3)).toEqual(['tcp://127.0.0.1:9998', '1', ctx.tlsEndpointPath]);
  await expect(envCommand(store, 'dev-b')).rejects.toMatchObject({ code: 'CONTEXT_NOT_FOUND' });
});
