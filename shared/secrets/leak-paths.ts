/**
 * Leak paths: requests that copy a container's contents or configuration out of it, decided from the container's
 * marker labels.
 *
 * - `docker commit` (container_commit) would bake the env secrets into the new image's config; `docker export`
 *   (container_export) and `docker cp` / the archive API (container_archive GET, container_archive_head HEAD,
 *   the legacy container_copyfiles) read its files; a checkpoint (container_checkpoint_create, experimental) dumps
 *   its processes' memory.
 * - An archive upload (container_extract, `docker cp` into the container, `PUT archive`) is a copy path too: it
 *   replaces files the container runs (`/bin/sleep`, an entrypoint script), and the next start or restart runs them
 *   with the container's env and /run/secrets — as much as `docker exec`, without the exec action.
 * - Denied (403, Docker's JSON error naming the secret rules) for a container carrying injected secrets, unless
 *   every secret rule that injected into it allows that path (`allow: [commit, export, copy]`).
 * - Archive reads are refused whole, not just under /run/secrets: dockerd resolves the requested path inside the
 *   container and follows symlinks in it, so with an image holding `/x -> /run/secrets` (or any path to it through
 *   /proc/self/root, a relative link, a directory link above a file) `GET archive?path=/x/DB_PASSWORD` reads the
 *   secret. A path check would have to re-implement dockerd's resolution against a filesystem we cannot see; the
 *   image and the container's writable layer are the user's to shape. HEAD is refused too: it stats the same path.
 * - A new container that shares a secret-carrying container's mounts (`--volumes-from`, which copies its
 *   /run/secrets bind), IPC (`--ipc container:…`, its /dev/shm and shared memory), processes (`--pid container:…`,
 *   whose /proc/<pid>/root and environ show its files and env), network (`--network container:…`: with NET_RAW, a
 *   default capability, it sniffs the plaintext credentials the container sends, and it reaches its localhost-only
 *   and abstract-socket endpoints) or environment (`--link`, which on the default bridge copies its env into
 *   `<ALIAS>_ENV_<NAME>` variables) is a copy path too: the create is refused unless the rules allow 'copy'.
 * - The shared references are then pinned to the full ids that were checked (pinSharedContainers), so a rename
 *   between the check and dockerd's create cannot swap in another container (pin-container.ts).
 * - `--pid host` shows every process on the host, so every container's /proc/<pid>/environ and
 *   /proc/<pid>/root/run/secrets: refused on a Defender that injects secrets (hostPidDenial).
 * - `--ipc host` gives the container the host's /dev/shm (dockerd binds it recursively), and with it a secrets base
 *   under /dev/shm (the default) and the tmpfs mounted there: refused while the base is under /dev/shm, as is
 *   `--ipc container:X` when X has the host's IPC namespace (hostIpcDenial; X is a shared container like any
 *   other, see sharedContainers). A base elsewhere leaves --ipc host free.
 * - `docker top` runs the host's ps with the client's options: the BSD option `e` prints each process's
 *   environment, env secrets included. For a container carrying env secrets, ps options that could show it are
 *   denied (unless the rules allow 'copy'): any BSD word (no leading `-`) with an `e`, and long options other than
 *   `--forest`/`--format`. UNIX options (`-ef`, `-o pid,args`) and BSD words without `e` (`aux`) are fine.
 * - A container without markers: nothing to decide here (access rules did).
 */
import { fieldKey, fieldValue, hostSettingsOf, isJsonObject, withHostSettings, type JsonObject } from './go-json-fields.js';
import { cleanContainerPath } from './inject-secrets.js';
import { FULL_ID } from './pin-container.js';
import { readMarkers } from './secret-labels.js';
import type { LeakPath } from './secret-rules.js';

export const LEAK_ACTIONS: Readonly<Record<string, LeakPath>> = {
  container_commit: 'commit',
  container_export: 'export',
  container_archive: 'copy',
  container_archive_head: 'copy',
  container_copyfiles: 'copy',
  container_extract: 'copy', // an upload replaces what the container runs: the next start runs it with the secrets
  container_checkpoint_create: 'copy', // experimental CRIU: a dump of the processes' memory, env included
};

const COMMANDS: Readonly<Record<LeakPath, string>> = { commit: 'docker commit', export: 'docker export', copy: 'docker cp' };
const ACTION_COMMANDS: Readonly<Record<string, string>> = { container_checkpoint_create: 'docker checkpoint create', container_extract: 'docker cp into it' };

export function leakPathOf(action: string): LeakPath | null {
  return Object.hasOwn(LEAK_ACTIONS, action) ? LEAK_ACTIONS[action]! : null;
}

export type LeakDecision = { readonly allowed: true; readonly rules: readonly string[] } | { readonly allowed: false; readonly message: string };

/** The decision for `action` on a container with `labels` (its Config.Labels). */
export function decideLeak(action: string, labels: unknown): LeakDecision {
  const path = leakPathOf(action);
  const markers = readMarkers(labels);
  if (path === null || markers === null) return { allowed: true, rules: [] };
  if (markers.allow.includes(path)) return { allowed: true, rules: markers.rules };
  const rules = markers.rules.map((r) => `'${r}'`).join(', ');
  return {
    allowed: false,
    message: `[Drawbridge] The command '${action}' (${ACTION_COMMANDS[action] ?? COMMANDS[path]}) is denied: the container carries secrets injected by secret rule ${rules}, and ${markers.rules.length > 1 ? 'not every one of them allows' : 'it does not allow'} '${path}'`,
  };
}

/** A `--link` spec `name[:alias]` (dockerd's opts.ParseLink: a leading `/` is dropped from both). */
function parseLink(spec: string): { name: string; alias: string } {
  const [name = '', alias] = spec.split(':', 2);
  const clean = (s: string) => s.replace(/^\//, '');
  return { name: clean(name), alias: clean(alias ?? name) };
}

/** The namespace modes of HostConfig that name another container as `container:<name|id>`. */
const SHARED_NAMESPACE_MODES = ['PidMode', 'IpcMode', 'NetworkMode'] as const;

/**
 * Every container reference of a create body that shares another container's mounts, processes, network or
 * environment: `VolumesFrom` (`name[:ro|rw]`), `PidMode`, `IpcMode` and `NetworkMode` `container:name` (IPC: its
 * /dev/shm and shared memory; network: its traffic and loopback), `Links` (`name[:alias]`). `visit` gives what
 * each reference becomes in the returned copy (see pinSharedContainers); the body itself is never changed.
 */
function visitShared(createBody: JsonObject, visit: (ref: string) => string): JsonObject {
  const hs = hostSettingsOf(createBody);
  if (hs === null) return createBody;
  const hostConfig: JsonObject = { ...hs.object };
  const fromKey = fieldKey(hostConfig, 'VolumesFrom', hs.where);
  const linksKey = fieldKey(hostConfig, 'Links', hs.where);
  if (fromKey !== null && Array.isArray(hostConfig[fromKey])) {
    hostConfig[fromKey] = (hostConfig[fromKey] as unknown[]).map((f) => {
      if (typeof f !== 'string' || f === '') return f;
      const colon = f.indexOf(':'); // dockerd's parseVolumesFrom: the id is what comes before the first ':'
      return colon < 0 ? visit(f) : `${visit(f.slice(0, colon))}${f.slice(colon)}`;
    });
  }
  for (const mode of SHARED_NAMESPACE_MODES) {
    const key = fieldKey(hostConfig, mode, hs.where);
    const value = key === null ? undefined : hostConfig[key];
    // `container:` alone names nothing: dockerd refuses it, nothing to look up.
    if (key !== null && typeof value === 'string' && value.startsWith('container:') && value !== 'container:') hostConfig[key] = `container:${visit(value.slice('container:'.length))}`;
  }
  if (linksKey !== null && Array.isArray(hostConfig[linksKey])) {
    hostConfig[linksKey] = (hostConfig[linksKey] as unknown[]).map((l) => {
      if (typeof l !== 'string' || l === '') return l;
      const { name, alias } = parseLink(l);
      return `${visit(name)}:${alias}`;
    });
  }
  return withHostSettings(createBody, hs, hostConfig);
}

/** Containers a create body shares mounts, processes, network or environment with (see visitShared). */
export function sharedContainers(createBody: unknown): string[] {
  if (!isJsonObject(createBody)) return [];
  const out: string[] = [];
  visitShared(createBody, (ref) => {
    out.push(ref);
    return ref;
  });
  return out;
}

/** The create body with every shared container reference replaced by the full id it was checked as (`ids`: ref → id). */
export function pinSharedContainers(createBody: JsonObject, ids: ReadonlyMap<string, string>): JsonObject {
  return visitShared(createBody, (ref) => {
    const id = ids.get(ref);
    if (id === undefined || !FULL_ID.test(id)) throw new Error(`shared container '${ref}' was not checked`);
    return id;
  });
}

/** The decision for a create that shares `ref`'s mounts or processes (see sharedContainers); `labels` are ref's. */
export function decideSharing(ref: string, labels: unknown): LeakDecision {
  const markers = readMarkers(labels);
  if (markers === null) return { allowed: true, rules: [] };
  if (markers.allow.includes('copy')) return { allowed: true, rules: markers.rules };
  return {
    allowed: false,
    message: `[Drawbridge] a container sharing the mounts or processes of '${ref}' is denied: '${ref}' carries secrets injected by secret rule ${markers.rules.map((r) => `'${r}'`).join(', ')}, which does not allow 'copy'`,
  };
}

/*
 * `docker top` runs the host's ps (procps) with the client's `ps_args` split on spaces, and ps has two grammars:
 * UNIX (`-e`: every process) and BSD (`e`: print each process's environment after its command). When procps cannot
 * parse a line as UNIX options it parses the WHOLE line again as BSD, dashes ignored: `-e -x`, `-ex`, `-e -t`
 * all print the environment. So the check below never tries to mirror procps; it accepts a small grammar in
 * which no word can become BSD `e`, and treats everything else as showing the environment:
 * - empty (dockerd runs `-ef`);
 * - `--forest` anywhere (a GNU option without a value, read the same in both grammars);
 * - a line of one word from PS_E_LINES (UNIX `-e` forms that procps parses as UNIX), or `-e -o <format>`, or
 *   `-eo <format>` (not `-ef -o …`: two format options conflict, and the BSD retry prints the environment);
 * - otherwise words without the letter `e`, where a format list (which may hold `e`: `user`, `etime`) is
 *   skipped only right after `-o`/`-O`/`o`/`O`/`--format` or a flag word ending in o/O (`axo`), and only
 *   while every earlier word is a flag that takes no value in either grammar (after `-t`, `-u`, `-s`… the next
 *   word could be read as their value in one grammar and as options in the other), and `--format=<format>`.
 */
const PS_E_LINES = new Set(['-e', '-ef', '-eF', '-el', '-elf', '-ely', '-eLf', '-efL', '-eH', '-efH']);
/** Flag words whose letters take no value in either grammar (no `e`, no o/O/p/t/u/s/g/G/C/U/k/q). */
const PS_FLAGS = /^-?[afxwjlLHyTcmrSvXZnh]+$/;
const PS_FORMAT_OPTIONS = new Set(['-o', '-O', 'o', 'O', '--format']);
/** A format list (keywords, `key=HEADER`); never a word that starts like an option. */
const PS_FORMAT = /^[A-Za-z0-9_%][A-Za-z0-9_,:=%+-]*$/;

/** Whether the `ps_args` of `docker top` could print processes' environment (see above). */
export function psShowsEnvironment(psArgs: string): boolean {
  // `--forest` (a GNU option) takes no value and reads the same in both grammars.
  const words = psArgs.split(' ').filter((w) => w !== '' && w !== '--forest');
  if (words.length === 0) return false;
  const first = words[0]!;
  const rest = words.slice(1);
  if (PS_E_LINES.has(first)) return !(rest.length === 0 || (first === '-e' && rest.length === 2 && rest[0] === '-o' && PS_FORMAT.test(rest[1]!)));
  if (first === '-eo') return !(rest.length === 1 && PS_FORMAT.test(rest[0]!));
  let flagsOnly = true; // every word so far takes no value in either grammar
  for (let i = 0; i < words.length; i++) {
    const w = words[i]!;
    const takesFormat = PS_FORMAT_OPTIONS.has(w) || (/[oO]$/.test(w) && PS_FLAGS.test(w.slice(0, -1)));
    if (takesFormat && flagsOnly) {
      const format = words[i + 1];
      if (format === undefined || !PS_FORMAT.test(format)) return true;
      i++;
      continue;
    }
    if (w.startsWith('--format=') && PS_FORMAT.test(w.slice('--format='.length))) continue;
    if (w.startsWith('--') || w.includes('e')) return true;
    if (!PS_FLAGS.test(w)) flagsOnly = false;
  }
  return false;
}

/** The decision for `docker top` with `psArgs` on a container with `labels`. */
export function decideTop(psArgs: string, labels: unknown): LeakDecision {
  const markers = readMarkers(labels);
  if (markers === null || markers.env.length === 0 || !psShowsEnvironment(psArgs)) return { allowed: true, rules: [] };
  if (markers.allow.includes('copy')) return { allowed: true, rules: markers.rules };
  return {
    allowed: false,
    message: `[Drawbridge] docker top with ps options that can show the environment ('${psArgs}') is denied: the container carries env secrets injected by secret rule ${markers.rules.map((r) => `'${r}'`).join(', ')}; use -ef, aux, or -o/-eo with a format list (e.g. -eo pid,user,args)`,
  };
}

/** A create body's `PidMode` (in HostConfig, or at the top level: hostSettingsOf; '' when it gives none). */
export function pidModeOf(createBody: unknown): string {
  const hs = isJsonObject(createBody) ? hostSettingsOf(createBody) : null;
  const mode = hs === null ? undefined : fieldValue(hs.object, 'PidMode', hs.where);
  return typeof mode === 'string' ? mode : '';
}

/** The refusal of a container that shares the host's process namespace (`pidMode` host); null when it does not. */
export function hostPidDenial(pidMode: string): string | null {
  if (pidMode !== 'host') return null;
  return "[Drawbridge] '--pid host' is denied on this Defender: it shows every container's processes and with them their secrets (/proc/<pid>/environ, /proc/<pid>/root/run/secrets); run without it";
}

/** Where dockerd puts the host's /dev/shm for a container with `--ipc host` (bound recursively, submounts and all). */
export const HOST_SHM = '/dev/shm';

/** The secrets base among `bases` (as configured and as resolved) that is the host's /dev/shm or inside it; null when none is. */
export function baseInHostShm(bases: readonly string[]): string | null {
  return bases.find((b) => cleanContainerPath(b) === HOST_SHM || cleanContainerPath(b).startsWith(`${HOST_SHM}/`)) ?? null;
}

/** A create body's `IpcMode` (in HostConfig, or at the top level: hostSettingsOf; '' when it gives none: dockerd's default, private or shareable). */
export function ipcModeOf(createBody: unknown): string {
  const hs = isJsonObject(createBody) ? hostSettingsOf(createBody) : null;
  const mode = hs === null ? undefined : fieldValue(hs.object, 'IpcMode', hs.where);
  return typeof mode === 'string' ? mode : '';
}

/**
 * The refusal of a container that would see the host's /dev/shm while a secrets base (`shmBase`, see
 * baseInHostShm) is there: `ipcMode` is its own mode, `via` the container it shares IPC with (`--ipc container:…`,
 * whose mode was host). Null when it does not, or when no base is under /dev/shm.
 */
export function hostIpcDenial(ipcMode: string, shmBase: string | null, via?: string): string | null {
  if (shmBase === null || ipcMode !== 'host') return null;
  const what = via === undefined ? "'--ipc host'" : `'--ipc container:${via}' ('${via}' has the host's IPC namespace)`;
  return `[Drawbridge] ${what} is denied on this Defender: the host's /dev/shm would be mounted in the container, and it holds every container's secret files (${shmBase}); run without it, or move the Defender's --secrets-dir out of /dev/shm`;
}
