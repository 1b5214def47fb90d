/**
 * Turns the Console's host list and the user's certificate into what the docker CLI reads.
 *
 * - One context `drawbridge-<host>` per host with a TCP listener (its own copy of ca/cert/key in the context's
 *   TLS dir). A UNIX-socket host gets none: the CLI speaks plain HTTP on unix:// (README "Listener"), so the
 *   entry says how to relay it. A host without a known address gets none either, and says so.
 * - Contexts of ours for this Console whose host is gone are removed; ours for other Consoles and everybody
 *   else's are never touched. The current context is never changed here (only `use` does that), except that
 *   removing the current context clears it, as `docker context rm` does.
 * - `$DOCKER_CONFIG/{ca,cert,key}.pem` get the same certificate (for DOCKER_HOST/DOCKER_TLS_VERIFY users), the
 *   user's own files backed up first (docker-cert-files.ts).
 */
import { DockerCertFiles } from './docker-cert-files.js';
import { contextNameForHost, DockerContextStore, type TlsMaterial } from './docker-context-store.js';
import type { HostEntry } from './companion-state.js';
import type { MyHost } from './console-api.js';
import { shellQuote } from './env-command.js';

export interface MaterialiseOptions {
  readonly configDir: string;
  readonly stateDir: string;
  readonly console: string;
  readonly hosts: readonly MyHost[];
  readonly tls: TlsMaterial;
}

/** A text from the Console made safe to print: control characters (terminal escapes) become '?'. */
const printable = (text: string): string => text.replace(/[\0-\x1f\x7f-\x9f]/g, '?');

/**
 * Why a host gets no Docker context, with what to do instead; undefined when it gets one. The address comes from
 * the host's Defender, by way of the Console: a command built from it is shell-quoted, so a path such as
 * `/run/d.sock; curl …|sh` stays one argument of the command the user is told to run.
 */
export function noContextNote(host: Pick<MyHost, 'dockerHost'>): string | undefined {
  if (host.dockerHost === null) return 'the Console knows no address for this host yet';
  if (host.dockerHost.startsWith('unix://')) {
    const relay = `socat TCP-LISTEN:2376,bind=127.0.0.1,fork,reuseaddr ${shellQuote(`UNIX-CONNECT:${host.dockerHost.slice('unix://'.length)}`)}`;
    return `a local UNIX socket on that machine: relay it there (${printable(relay)}) and use DOCKER_HOST=tcp://127.0.0.1:2376`;
  }
  return host.dockerHost.startsWith('tcp://') ? undefined : `unsupported address ${printable(host.dockerHost)}`;
}

/** Writes every context and the cert files; resolves to the host entries to remember. */
export async function materialiseHosts(opts: MaterialiseOptions): Promise<HostEntry[]> {
  const store = new DockerContextStore(opts.configDir);
  const certFiles = new DockerCertFiles({ configDir: opts.configDir, stateDir: opts.stateDir }).install(opts.tls);
  certFiles.catch(() => undefined); // awaited below
  // Hosts are independent (each context has its own dirs): written side by side, each file still atomic.
  const entries = await Promise.all(
    opts.hosts.map(async (host): Promise<HostEntry> => {
      const note = noContextNote(host);
      const base = { hostName: host.hostName, dockerHost: host.dockerHost, listener: host.listener, summary: host.summary };
      if (note !== undefined) return { ...base, context: null, note };
      const name = contextNameForHost(host.hostName);
      await store.write({ name, dockerHost: host.dockerHost!, tls: opts.tls, drawbridge: { console: opts.console, host: host.hostName } });
      return { ...base, context: name };
    }),
  );
  const wanted = new Set(entries.map((e) => e.context).filter((c): c is string => c !== null));
  for (const stale of await store.list()) {
    if (stale.drawbridge?.console === opts.console && !wanted.has(stale.name)) await store.remove(stale.name);
  }
  await certFiles;
  return entries;
}

/** Removes every context of ours for this Console; resolves to their names and whether currentContext was one. */
export async function removeHostContexts(configDir: string, consoleUrl: string): Promise<{ removed: string[]; clearedCurrentContext: boolean }> {
  const store = new DockerContextStore(configDir);
  const removed: string[] = [];
  let clearedCurrentContext = false;
  for (const context of await store.list()) {
    if (context.drawbridge?.console !== consoleUrl) continue;
    const r = await store.remove(context.name);
    if (r.removed) removed.push(context.name);
    clearedCurrentContext ||= r.clearedCurrentContext;
  }
  return { removed, clearedCurrentContext };
}
