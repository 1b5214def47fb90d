/**
 * What the Defender asks dockerd itself (over its own upstream connection, never as a user): a container's labels
 * and state, and the containers that carry secret markers. Answers are bounded; a lookup that fails throws, and
 * callers fail closed.
 */
import { sharedContainers } from '../../shared/secrets/leak-paths.js';
import { SECRET_LABELS } from '../../shared/secrets/secret-labels.js';
import type { DockerUpstream, UpstreamExchange } from '../docker-upstream.js';

const MAX_ANSWER = 8 * 1024 * 1024;
const TIMEOUT_MS = 15_000;

export interface ContainerFacts {
  readonly id: string;
  readonly labels: Readonly<Record<string, string>>;
  /** Running, paused, or restarting (dockerd will start it again by itself: its restart policy). */
  readonly running: boolean;
  /** Host paths of its mounts (bind sources). */
  readonly mountSources: readonly string[];
  /** Its HostConfig.IpcMode as dockerd resolved it at create (`host`, `private`, `container:<id>`…; '' from a list). */
  readonly ipcMode: string;
  /** Its HostConfig.PidMode (`host`, `container:<id>`, ''; '' from a list). */
  readonly pidMode: string;
  /** The containers it shares mounts, processes, network or environment with, as stored (sharedContainers; none from a list). */
  readonly sharedRefs: readonly string[];
}

/** GET `path` from dockerd (over the keep-alive pool) → status and parsed JSON (null body for non-JSON). */
export function upstreamJson(upstream: DockerUpstream, path: string): Promise<{ status: number; body: unknown }> {
  return new Promise((resolve, reject) => {
    let status = 0;
    const chunks: Buffer[] = [];
    let size = 0;
    let settled = false;
    let timer: NodeJS.Timeout | undefined;
    let exchange: UpstreamExchange | undefined;
    const fail = (err: Error): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      exchange?.abort();
      reject(err);
    };
    exchange = upstream.exchange('GET', path, ['Host', 'docker'], { kind: 'buffer', body: null }, {
      head: (s) => {
        status = s;
      },
      body: (chunk) => {
        size += chunk.length;
        if (size > MAX_ANSWER) fail(new Error('the answer from dockerd is too large'));
        else chunks.push(Buffer.from(chunk)); // the chunk may be a view of a buffer the parser reuses
      },
      idle: () => undefined,
      end: () => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        let body: unknown = null;
        try {
          body = JSON.parse(Buffer.concat(chunks, size).toString('utf8'));
        } catch {
          /* not JSON */
        }
        resolve({ status, body });
      },
      error: (err) => fail(err),
    });
    if (!settled) timer = setTimeout(() => fail(new Error(`dockerd did not answer ${path.split('?')[0]} in time`)), TIMEOUT_MS);
  });
}

function facts(raw: Record<string, any>): ContainerFacts {
  const labels = (raw.Config?.Labels ?? raw.Labels ?? {}) as Record<string, string>;
  // Inspect: State.Running stays true while dockerd waits to restart a container (State.Restarting); list: a word.
  const running = raw.State && typeof raw.State === 'object' ? raw.State.Running === true || raw.State.Restarting === true : ['running', 'paused', 'restarting'].includes(raw.State);
  const mounts = Array.isArray(raw.Mounts) ? (raw.Mounts as Record<string, unknown>[]) : [];
  const mountSources = mounts.map((m) => m?.Source).filter((s): s is string => typeof s === 'string');
  const mode = (name: 'IpcMode' | 'PidMode'): string => (typeof raw.HostConfig?.[name] === 'string' ? (raw.HostConfig[name] as string) : '');
  const sharedRefs = raw.HostConfig && typeof raw.HostConfig === 'object' ? sharedContainers({ HostConfig: raw.HostConfig }) : [];
  return { id: String(raw.Id ?? ''), labels, running, mountSources, ipcMode: mode('IpcMode'), pidMode: mode('PidMode'), sharedRefs };
}

/** The container named or id-prefixed `ref`, as dockerd resolves it; null when dockerd knows none (404). */
export async function lookupContainer(upstream: DockerUpstream, ref: string): Promise<ContainerFacts | null> {
  const { status, body } = await upstreamJson(upstream, `/containers/${encodeURIComponent(ref)}/json`);
  if (status === 404) return null;
  if (status !== 200 || typeof body !== 'object' || body === null) throw new Error(`dockerd answered ${status} to a container lookup`);
  return facts(body as Record<string, any>);
}

/** Every container (running or not) that carries a secret directory marker (`instance`: that one only). */
export async function listMarkedContainers(upstream: DockerUpstream, instance?: string): Promise<ContainerFacts[]> {
  const filters = encodeURIComponent(JSON.stringify({ label: [instance === undefined ? SECRET_LABELS.instance : `${SECRET_LABELS.instance}=${instance}`] }));
  const { status, body } = await upstreamJson(upstream, `/containers/json?all=1&filters=${filters}`);
  if (status !== 200 || !Array.isArray(body)) throw new Error(`dockerd answered ${status} to a container list`);
  return (body as Record<string, any>[]).map(facts);
}
