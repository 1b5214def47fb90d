/**
 * The image the end-to-end tests run: static busybox and nothing else, imported with the real docker CLI (no
 * registry, no network, ~2 MB, ready in well under a second).
 *
 * - /bin/busybox plus one symlink per applet (`busybox --list`), so `sh`, `echo`, `sleep`, `cat`… are on PATH=/bin.
 * - /etc/passwd and /etc/group with root and nobody (65534), so `--user nobody` works; /tmp is 1777.
 * - Idempotent: an existing tag is reused.
 */
import { execFile } from 'node:child_process';
import { chmod, copyFile, mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { dockerCliEnv } from './dockerd.js';

const run = promisify(execFile);

export const BUSYBOX_PATH = '/bin/busybox';
export const DEFAULT_TEST_IMAGE = 'drawbridge-test:busybox';

const PASSWD = 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n';
const GROUP = 'root:x:0:\nnobody:x:65534:\nnogroup:x:65534:\n';

async function imageExists(env: NodeJS.ProcessEnv, tag: string): Promise<boolean> {
  try {
    await run('docker', ['image', 'inspect', '--format', '{{.Id}}', tag], { env });
    return true;
  } catch {
    return false;
  }
}

/** Builds (once) the busybox test image on the daemon at `dockerHost`; resolves with its tag. */
export async function buildTestImage(dockerHost: string, tag = DEFAULT_TEST_IMAGE): Promise<string> {
  const env = dockerCliEnv(dockerHost);
  if (await imageExists(env, tag)) return tag;

  let applets: string[];
  try {
    applets = (await run(BUSYBOX_PATH, ['--list'])).stdout.split('\n').map((a) => a.trim());
  } catch (error) {
    throw new Error(`buildTestImage: cannot run ${BUSYBOX_PATH} (apt-get install busybox-static): ${(error as Error).message}`);
  }

  const work = await mkdtemp(join(tmpdir(), 'drawbridge-image-'));
  try {
    const rootfs = join(work, 'rootfs');
    for (const d of ['bin', 'etc', 'tmp', 'root']) await mkdir(join(rootfs, d), { recursive: true });
    await chmod(join(rootfs, 'tmp'), 0o1777);
    await chmod(join(rootfs, 'root'), 0o700);
    await copyFile(BUSYBOX_PATH, join(rootfs, 'bin', 'busybox'));
    await chmod(join(rootfs, 'bin', 'busybox'), 0o755);
    for (const applet of new Set(applets)) {
      if (/^[\w.[-]+$/.test(applet) && applet !== 'busybox') await symlink('busybox', join(rootfs, 'bin', applet));
    }
    await writeFile(join(rootfs, 'etc', 'passwd'), PASSWD, { mode: 0o644 });
    await writeFile(join(rootfs, 'etc', 'group'), GROUP, { mode: 0o644 });

    const tar = join(work, 'rootfs.tar');
    await run('tar', ['--numeric-owner', '--owner=0', '--group=0', '-C', rootfs, '-cf', tar, '.']);
    await run('docker', ['import', '--change', 'CMD ["/bin/sh"]', '--change', 'ENV PATH=/bin', tar, tag], { env });
  } finally {
    await rm(work, { recursive: true, force: true });
  }
  return tag;
}
