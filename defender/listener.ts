/**
 * Which address a Console-managed Defender listens on, switched live when the Console says so (Prisma Cloud's
 * "Choose the socket type"): TCP (`HOST:PORT`) or a local UNIX socket.
 *
 * - A switch starts the new listener first and only then stops accepting on the old one; connections already
 *   open on the old one (a `docker logs -f`, an attach) run on until they end. If the new listener cannot start,
 *   the old one stays and the switch is retried later (`retry()`), so the Defender is never left without one.
 *   At start, a listener that cannot be bound is not fatal either: the Console owns this setting, so the Defender
 *   keeps its Console connection (to learn a better one) and retries.
 * - Both serve the same mTLS: the socket is not a way around the certificate check. It is created mode 0660,
 *   owned by the Defender's user and its group (or `--socket-group`): the users of the group may connect, and
 *   their certificate decides what they may do, as on TCP. Nobody else can even start a handshake.
 * - An existing file at the socket path is replaced only if it is a socket nobody listens on (left by a crash).
 *
 * The docker CLI speaks plain HTTP on `unix://` even with DOCKER_TLS_VERIFY (checked with docker 28.2), so users
 * of the socket relay it to a local TCP port and use TLS end to end through the relay, e.g.
 *   socat TCP-LISTEN:2376,bind=127.0.0.1,fork,reuseaddr UNIX-CONNECT:/run/drawbridge/docker.sock
 *   DOCKER_HOST=tcp://127.0.0.1:2376 DOCKER_TLS_VERIFY=1 docker ps
 * (the Defender's certificate always names localhost and 127.0.0.1 for this).
 */
import { chmodSync, existsSync, lchownSync, lstatSync, mkdirSync, readFileSync, rmSync } from 'node:fs';
import { connect } from 'node:net';
import { dirname } from 'node:path';
import type { ListenerConfig } from '../shared/wire/defender-console.js';
import { splitHostPort } from './config.js';
import type { Logger } from './log.js';
import { othersMayReplace } from './owned-dir.js';
import type { DefenderListener, DefenderServer } from './server.js';

export const SOCKET_MODE = 0o660;

/** A group name or numeric gid → gid (names from /etc/group). */
export function resolveGroup(group: string, groupFile = '/etc/group'): number {
  if (/^\d+$/.test(group)) return Number(group);
  let text = '';
  try {
    text = readFileSync(groupFile, 'utf8');
  } catch {
    /* no group database: not found below */
  }
  for (const line of text.split('\n')) {
    const [name, , gid] = line.split(':');
    if (name === group && gid !== undefined && /^\d+$/.test(gid)) return Number(gid);
  }
  throw new Error(`no group named '${group}' (in ${groupFile})`);
}

function isListening(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(path);
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

/**
 * Refuses a socket directory another user could change (owned by them, or writable by group or others without
 * the sticky bit, as /tmp has): there, they could swap the socket for a symbolic link between the bind and the
 * chmod/chown that follow it, and have the Defender (root) hand a file of their choosing to the socket's group.
 */
export function checkSocketDir(dir: string): void {
  const why = othersMayReplace(lstatSync(dir));
  if (why !== null) throw new Error(`the socket directory ${dir} is one another user could change (${why}); choose a directory only root (or the Defender's user) may write to, such as /run/drawbridge`);
}

/** Makes `path` ready to bind: its directory exists; a stale socket file is removed; anything else is refused. */
async function prepareSocketPath(path: string): Promise<void> {
  mkdirSync(dirname(path), { recursive: true, mode: 0o755 });
  checkSocketDir(dirname(path));
  if (!existsSync(path)) return;
  if (!lstatSync(path).isSocket()) throw new Error(`${path} exists and is not a socket; refusing to replace it`);
  if (await isListening(path)) throw new Error(`another process is listening on ${path}`);
  rmSync(path, { force: true });
}

const sameListener = (a: ListenerConfig | null, b: ListenerConfig): boolean => a !== null && JSON.stringify(a) === JSON.stringify(b);

export interface ListenerManager {
  /** The listener config in force (null before the first one started). */
  readonly current: ListenerConfig | null;
  /** What it is bound to: HOST:PORT (port 0 resolved) or the socket path. */
  readonly address: string | null;
  /** Switches to `wanted` if it is not what runs. Resolves false when it could not (the old one stays). */
  apply(wanted: ListenerConfig): Promise<boolean>;
  /** Tries again a switch that failed. */
  retry(): Promise<void>;
}

export function listenerManager(defender: DefenderServer, log: Logger, opts: { socketGid?: number } = {}): ListenerManager {
  let current: { config: ListenerConfig; listener: DefenderListener } | null = null;
  let wanted: ListenerConfig | null = null;
  let chain: Promise<unknown> = Promise.resolve();

  async function start(config: ListenerConfig): Promise<DefenderListener> {
    if (config.type === 'tcp') {
      const { host, port } = splitHostPort(config.address);
      return defender.listen({ port, host });
    }
    await prepareSocketPath(config.path);
    const listener = await defender.listen({ path: config.path });
    try {
      chmodSync(config.path, SOCKET_MODE);
      if (opts.socketGid !== undefined) lchownSync(config.path, -1, opts.socketGid);
    } catch (e) {
      await listener.close(0);
      throw e;
    }
    return listener;
  }

  async function switchTo(config: ListenerConfig): Promise<boolean> {
    wanted = config;
    if (sameListener(current?.config ?? null, config)) return true;
    const old = current;
    let listener: DefenderListener;
    try {
      listener = await start(config);
    } catch (e) {
      const err = e as NodeJS.ErrnoException;
      // The same port on another address (0.0.0.0 ↔ 127.0.0.1) cannot be bound while the old one holds it: stop
      // accepting there first (open connections still finish), then bind; put the old one back if that fails too.
      if (err.code === 'EADDRINUSE' && old?.config.type === 'tcp' && config.type === 'tcp' && splitHostPort(old.config.address).port === splitHostPort(config.address).port) {
        void old.listener.close(Infinity);
        current = null;
        try {
          listener = await start(config);
        } catch (again) {
          log.error('cannot switch the listener; keeping the old one', { wanted: describe(config), error: (again as Error).message });
          current = { config: old.config, listener: await start(old.config) };
          return false;
        }
        current = { config, listener };
        log.info('listening', { listen: listener.address, type: config.type });
        return true;
      }
      log.error(old ? 'cannot switch the listener; keeping the old one and retrying' : 'cannot listen yet; retrying (the Console can also pick another listener)', { wanted: describe(config), error: err.code ?? err.message });
      return false;
    }
    current = { config, listener };
    log.info('listening', { listen: listener.address, type: config.type });
    if (old) {
      log.info('stopped accepting on the previous listener; its open connections run on', { previous: old.listener.address });
      void old.listener.close(Infinity);
    }
    return true;
  }

  return {
    get current() {
      return current?.config ?? null;
    },
    get address() {
      return current?.listener.address ?? null;
    },
    apply(config) {
      const run = chain.then(() => switchTo(config));
      chain = run.catch(() => undefined);
      return run;
    },
    async retry() {
      if (wanted && !sameListener(current?.config ?? null, wanted)) await this.apply(wanted);
    },
  };
}

function describe(config: ListenerConfig): string {
  return config.type === 'tcp' ? `tcp ${config.address}` : `unix ${config.path}`;
}
