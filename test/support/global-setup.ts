/**
 * vitest globalSetup for the e2e project: one Docker daemon and one test image for the whole run.
 *
 * - DRAWBRIDGE_TEST_DOCKER_HOST set → that daemon is used as is (and never stopped); otherwise a private
 *   dockerd is started (test/support/dockerd.ts) and stopped at teardown.
 * - Tests read them with inject('dockerHost') / inject('testImage').
 */
import type {} from 'vitest'; // loads the module augmented below
import type { TestProject } from 'vitest/node';
import { startDockerd, type DockerDaemon } from './dockerd.js';
import { buildTestImage } from './test-image.js';
import { requireSystem } from './system-check.js';

declare module 'vitest' {
  export interface ProvidedContext {
    /** DOCKER_HOST of the daemon under test, e.g. unix:///tmp/dbd-abc123/docker.sock. */
    dockerHost: string;
    /** Tag of the busybox test image on that daemon. */
    testImage: string;
  }
}

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  let daemon: DockerDaemon | undefined;
  let host = process.env.DRAWBRIDGE_TEST_DOCKER_HOST;
  if (!host) {
    await requireSystem(['dockerd', 'docker', 'busybox']);
    const started = Date.now();
    daemon = await startDockerd();
    host = daemon.host;
    console.log(`e2e: private dockerd ready in ${Date.now() - started} ms at ${host}`);
  }
  try {
    const started = Date.now();
    const image = await buildTestImage(host);
    console.log(`e2e: test image ${image} ready in ${Date.now() - started} ms`);
    project.provide('dockerHost', host);
    project.provide('testImage', image);
  } catch (error) {
    await daemon?.stop();
    throw error;
  }
  return async () => {
    await daemon?.stop();
  };
}
