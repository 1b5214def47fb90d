/**
 * Leak paths: requests that copy a container's contents or configuration out of it, decided from the container's
 * marker labels.
 *
 * - `docker commit` (container_commit) would bake the env secrets into the new image's config; `docker export`
 *   (container_export) and `docker cp` / the archive API (container_archive GET, container_archive_head HEAD,
 *   the legacy container_copyfiles) read its files.
 * - Denied (403, Docker's JSON error naming the secret rules) for a container carrying injected secrets, unless
 *   every secret rule that injected into it allows that path (`allow: [commit, export, copy]`).
 * - Archive reads are refused whole, not just under /run/secrets: dockerd resolves the requested path inside the
 *   container and follows symlinks in it, so with an image holding `/x -> /run/secrets` (or any path to it through
 *   /proc/self/root, a relative link, a directory link above a file) `GET archive?path=/x/DB_PASSWORD` reads the
 *   secret. A path check would have to re-implement dockerd's resolution against a filesystem we cannot see; the
 *   image and the container's writable layer are the user's to shape. HEAD is refused too: it stats the same path.
 * - A new container that shares a secret-carrying container's mounts (`--volumes-from`, which copies its
 *   /run/secrets bind) or processes (`--pid container:…`, whose /proc/<pid>/root and environ show its files and
 *   env) is a copy path too: the create is refused unless the rules allow 'copy'.
 * - A container without markers: nothing to decide here (access rules did).
 */
import { fieldValue, isJsonObject } from './go-json-fields.js';
import { readMarkers } from './secret-labels.js';
import type { LeakPath } from './secret-rules.js';

export const LEAK_ACTIONS: Readonly<Record<string, LeakPath>> = {
  container_commit: 'commit',
  container_export: 'export',
  container_archive: 'copy',
  container_archive_head: 'copy',
  container_copyfiles: 'copy',
};

const COMMANDS: Readonly<Record<LeakPath, string>> = { commit: 'docker commit', export: 'docker export', copy: 'docker cp' };

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
    message: `[Drawbridge] The command '${action}' (${COMMANDS[path]}) is denied: the container carries secrets injected by secret rule ${rules}, and ${markers.rules.length > 1 ? 'not every one of them allows' : 'it does not allow'} '${path}'`,
  };
}

/** Containers a create body shares mounts or processes with: `VolumesFrom` (`name[:ro|rw]`) and `PidMode` `container:name`. */
export function sharedContainers(createBody: unknown): string[] {
  if (!isJsonObject(createBody)) return [];
  const hostConfig = fieldValue(createBody, 'HostConfig', '');
  if (!isJsonObject(hostConfig)) return [];
  const out: string[] = [];
  const from = fieldValue(hostConfig, 'VolumesFrom', 'HostConfig.');
  if (Array.isArray(from)) for (const f of from) if (typeof f === 'string' && f !== '') out.push(f.replace(/:(ro|rw)$/, ''));
  const pid = fieldValue(hostConfig, 'PidMode', 'HostConfig.');
  if (typeof pid === 'string' && pid.startsWith('container:')) out.push(pid.slice('container:'.length));
  return out;
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
