// Large streams both ways through the real Defender and a real dockerd, byte for byte: a 32 MiB archive read by a
// client that stops now and then (the Defender must hold dockerd back), and 48 MiB uploads as docker cp sends them,
// whose bytes reach the Defender in reused read buffers (defender/client-reads.ts) while dockerd holds the upload
// back. What arrived is checked on the daemon's own socket.
import { createHash, randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { request as httpRequest, type ClientRequest, type IncomingMessage } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { daemonRequest, removeLabelled } from '../support/daemon-request.js';
import { startDefenderProcess, type DefenderProcess } from '../support/defender-process.js';
import type {} from '../support/global-setup.js'; // the ProvidedContext keys
import { fileInTar, tarOf } from '../support/tar.js';

const LABEL = 'drawbridge-test=defender-streams';
const RULES = `
rules:
  - name: copiers-copy
    effect: allow
    users: [bob]
    actions: [container_archive, container_extract]
`;

let dp: DefenderProcess;
let bobCerts: string;
const dockerHost = (): string => inject('dockerHost');
const unique = (what: string): string => `dbs-${what}-${randomBytes(4).toString('hex')}`;

beforeAll(async () => {
  dp = await startDefenderProcess({ dockerHost: dockerHost(), rules: RULES });
  bobCerts = await dp.certDir({ user: 'bob', groups: [] });
});

afterAll(async () => {
  await removeLabelled(dockerHost(), LABEL);
  if (dp) expect(await dp.stop()).toBe(0);
});

/** A container made directly on the daemon, labelled for cleanup. */
async function createContainer(cmd: string[]): Promise<string> {
  const name = unique('c');
  const created = await daemonRequest(dockerHost(), 'POST', `/containers/create?name=${name}`, { Image: inject('testImage'), Cmd: cmd, Labels: { [LABEL.split('=')[0]!]: LABEL.split('=')[1]! } });
  expect(created.status, created.body).toBe(201);
  return name;
}

const bobTls = async (): Promise<{ ca: Buffer; cert: Buffer; key: Buffer }> => {
  const [ca, cert, key] = await Promise.all(['ca.pem', 'cert.pem', 'key.pem'].map((f) => readFile(join(bobCerts, f))));
  return { ca: ca!, cert: cert!, key: key! };
};

describe('answers streamed back', () => {
  /** The sha256 of an answer's body, read with the given pauses (ms after how many bytes): a client slower than dockerd. */
  function digest(send: (onAnswer: (res: IncomingMessage) => void) => ClientRequest, pauses: ReadonlyArray<readonly [number, number]> = []): Promise<{ status: number; bytes: number; sha256: string }> {
    return new Promise((resolve, reject) => {
      const req = send((res) => {
        const hash = createHash('sha256');
        let bytes = 0;
        let next = 0;
        res.on('data', (chunk: Buffer) => {
          hash.update(chunk);
          bytes += chunk.length;
          if (next < pauses.length && bytes >= pauses[next]![0]) {
            res.pause();
            setTimeout(() => res.resume(), pauses[next++]![1]);
          }
        });
        res.on('end', () => resolve({ status: res.statusCode ?? 0, bytes, sha256: hash.digest('hex') }));
        res.on('error', reject);
      });
      req.on('error', reject);
      req.end();
    });
  }

  it('a client that stops reading now and then gets a 32 MiB archive byte for byte as dockerd sends it', async () => {
    const size = 32 * 1024 * 1024;
    const name = await createContainer(['sh', '-c', `head -c ${size} /dev/urandom > /data.bin`]);
    expect((await daemonRequest(dockerHost(), 'POST', `/containers/${name}/start`)).status).toBe(204);
    expect((await daemonRequest(dockerHost(), 'POST', `/containers/${name}/wait`)).json()).toMatchObject({ StatusCode: 0 });
    const path = `/containers/${name}/archive?path=/data.bin`;
    const direct = await digest((cb) => httpRequest({ socketPath: dockerHost().slice('unix://'.length), path }, cb));
    expect(direct.status).toBe(200);
    expect(direct.bytes).toBeGreaterThan(size);
    const { ca, cert, key } = await bobTls();
    // Each pause outlasts what the kernel's socket buffers hold at dockerd's pace: the Defender has to hold dockerd back.
    const pauses = [[1 << 20, 400], [12 << 20, 400], [24 << 20, 400]] as const;
    const through = await digest((cb) => httpsRequest({ host: '127.0.0.1', port: dp.port, path, ca, cert, key, agent: false }, cb), pauses);
    expect(through).toEqual(direct);
  });
});

describe('bodies streamed up', () => {
  // The bytes come to the Defender in reused read buffers (defender/client-reads.ts); dockerd writing the file to disk
  // holds the upload back, so pieces wait in the Defender while later reads arrive.
  it.each(['chunked', 'a Content-Length'] as const)('a 48 MiB docker cp upload, framed by %s, reaches the container byte for byte', async (framing) => {
    const name = await createContainer(['true']);
    const data = randomBytes(48 * 1024 * 1024);
    const tar = tarOf('up.bin', data);
    const { ca, cert, key } = await bobTls();
    const status = await new Promise<number>((resolve, reject) => {
      const headers: Record<string, string | number> = { 'Content-Type': 'application/x-tar' };
      if (framing === 'a Content-Length') headers['Content-Length'] = tar.length;
      const req = httpsRequest({ host: '127.0.0.1', port: dp.port, method: 'PUT', path: `/v1.41/containers/${name}/archive?path=/tmp`, headers, ca, cert, key, agent: false }, (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode ?? 0));
      });
      req.on('error', reject);
      // Odd-sized writes, waiting for drain: TLS records and reads never line up with the tar's blocks.
      let at = 0;
      const more = (): void => {
        while (at < tar.length) {
          const piece = tar.subarray(at, at + 100_003);
          at += piece.length;
          if (!req.write(piece)) return void req.once('drain', more);
        }
        req.end();
      };
      more();
    });
    expect(status).toBe(200);
    const back = await daemonRequest(dockerHost(), 'GET', `/containers/${name}/archive?path=/tmp/up.bin`);
    expect(back.status).toBe(200);
    const file = fileInTar(back.raw);
    expect(file.length).toBe(data.length);
    expect(createHash('sha256').update(file).digest('hex')).toBe(createHash('sha256').update(data).digest('hex'));
  });
});
