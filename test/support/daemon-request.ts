/**
 * Plain HTTP to the Docker daemon's own socket, past the Defender: how end-to-end tests check what really happened
 * (was the container created, is it running) without trusting the component under test.
 */
import http from 'node:http';

export interface DaemonResponse {
  readonly status: number;
  readonly headers: Readonly<Record<string, string | string[] | undefined>>;
  readonly body: string;
  /** The body's bytes (an archive, a log stream). */
  readonly raw: Buffer;
  json<T = Record<string, unknown>>(): T;
}

/** One request to the daemon at `dockerHost` (`unix:///…/docker.sock`); `body` is sent as JSON, a Buffer as is. */
export function daemonRequest(dockerHost: string, method: string, path: string, body?: unknown, headers: Record<string, string> = {}): Promise<DaemonResponse> {
  if (!dockerHost.startsWith('unix://')) throw new Error(`daemonRequest: only unix:// daemons are supported, not ${dockerHost}`);
  const payload = body === undefined ? undefined : Buffer.isBuffer(body) ? body : JSON.stringify(body);
  return new Promise((resolve, reject) => {
    const req = http.request(
      {
        socketPath: dockerHost.slice('unix://'.length),
        method,
        path,
        headers: { ...(payload === undefined ? {} : { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(payload) }), ...headers },
        timeout: 30_000,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('end', () => {
          const raw = Buffer.concat(chunks);
          const text = raw.toString('utf8');
          resolve({ status: res.statusCode ?? 0, headers: res.headers, body: text, raw, json: <T>() => JSON.parse(text) as T });
        });
        res.on('error', reject);
      },
    );
    req.on('timeout', () => req.destroy(new Error(`${method} ${path} timed out`)));
    req.on('error', reject);
    req.end(payload);
  });
}

/** Names (without the leading '/') of every container, running or not, whose name contains `fragment`. */
export async function containerNames(dockerHost: string, fragment: string): Promise<string[]> {
  const filters = encodeURIComponent(JSON.stringify({ name: [fragment] }));
  const res = await daemonRequest(dockerHost, 'GET', `/containers/json?all=1&filters=${filters}`);
  if (res.status !== 200) throw new Error(`listing containers: ${res.status} ${res.body}`);
  return res.json<{ Names: string[] }[]>().flatMap((c) => c.Names.map((n) => n.replace(/^\//, '')));
}

/** Force-removes every container carrying `label` (key=value). */
export async function removeLabelled(dockerHost: string, label: string): Promise<void> {
  const filters = encodeURIComponent(JSON.stringify({ label: [label] }));
  const res = await daemonRequest(dockerHost, 'GET', `/containers/json?all=1&filters=${filters}`);
  if (res.status !== 200) return;
  await Promise.all(res.json<{ Id: string }[]>().map((c) => daemonRequest(dockerHost, 'DELETE', `/containers/${c.Id}?force=1`)));
}
