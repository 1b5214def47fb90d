// Proves the e2e harness: the private daemon from global-setup runs a container from the test image through the
// real docker CLI.
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { expect, inject, test } from 'vitest';
import { dockerCliEnv } from '../support/dockerd.js';
import type {} from '../support/global-setup.js'; // the ProvidedContext keys

const run = promisify(execFile);

test('docker run prints hello through the private daemon', async () => {
  const { stdout } = await run('docker', ['run', '--rm', inject('testImage'), 'echo', 'hello'], {
    env: dockerCliEnv(inject('dockerHost')),
  });
  expect(stdout).toBe('hello\n');
});

test('the image has the applets and users the tests rely on', async () => {
  const { stdout } = await run('docker', ['run', '--rm', '--user', 'nobody', inject('testImage'), 'sh', '-c', 'id -un; ls -ld /tmp'], {
    env: dockerCliEnv(inject('dockerHost')),
  });
  const [user, tmp] = stdout.trim().split('\n');
  expect(user).toBe('nobody');
  expect(tmp).toMatch(/^drwxrwxrwt/);
});
