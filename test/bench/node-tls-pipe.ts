/**
 * The benchmark's second yardstick: the fastest a Node.js proxy can be here. An mTLS server on the same
 * certificates that pipes every connection to dockerd's UNIX socket byte for byte: no HTTP parsing, no policy,
 * no audit, nothing the Defender must do. What it reaches against HAProxy in the same run is the ceiling for any
 * proxy written in Node on this machine (Node's TLS and stream machinery cost that much per request).
 *
 * Run as its own process (`node node-tls-pipe.js '<options JSON>'`, prints `listening <port>`), so its CPU time is
 * its own; `startNodeTlsPipe` starts and stops it.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { connect } from 'node:net';
import { createServer } from 'node:tls';
import { fileURLToPath } from 'node:url';
import { stoppable } from './child-process.js';

export interface NodeTlsPipeOptions {
  readonly dockerSocket: string;
  /** PEM paths: server certificate, its key, and the CA client certificates must chain to. */
  readonly cert: string;
  readonly key: string;
  readonly ca: string;
}

export interface NodeTlsPipe {
  readonly port: number;
  readonly pid: number;
  stop(): Promise<void>;
}

function serve(opts: NodeTlsPipeOptions): void {
  const server = createServer({
    cert: readFileSync(opts.cert),
    key: readFileSync(opts.key),
    ca: readFileSync(opts.ca),
    requestCert: true,
    rejectUnauthorized: true,
    minVersion: 'TLSv1.2',
    allowHalfOpen: true,
    noDelay: true,
  });
  server.on('secureConnection', (client) => {
    client.setNoDelay(true);
    const upstream = connect({ path: opts.dockerSocket, allowHalfOpen: true });
    client.pipe(upstream);
    upstream.pipe(client);
    client.on('error', () => upstream.destroy());
    upstream.on('error', () => client.destroy());
    client.on('close', () => upstream.destroy());
    upstream.on('close', () => client.destroy());
  });
  server.listen(0, '127.0.0.1', () => process.stdout.write(`listening ${(server.address() as { port: number }).port}\n`));
}

export async function startNodeTlsPipe(opts: NodeTlsPipeOptions): Promise<NodeTlsPipe> {
  const child: ChildProcess = spawn(process.execPath, [fileURLToPath(import.meta.url), JSON.stringify(opts)], { stdio: ['ignore', 'pipe', 'inherit'] });
  const { stop } = stoppable(child);
  const port = await new Promise<number>((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => reject(new Error('the Node TLS pipe did not start in 10 s')), 10_000);
    child.stdout!.setEncoding('utf8').on('data', (s: string) => {
      out += s;
      const m = /listening (\d+)/.exec(out);
      if (m) {
        clearTimeout(timer);
        resolve(Number(m[1]));
      }
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`the Node TLS pipe exited with ${code} before listening`));
    });
  }).catch(async (err: Error) => {
    await stop();
    throw err;
  });
  return { port, pid: child.pid!, stop };
}

if (process.argv[1] === fileURLToPath(import.meta.url)) serve(JSON.parse(process.argv[2]!) as NodeTlsPipeOptions);
