/**
 * Host paths a request asks dockerd to mount, and the rule that keeps the Defender's secrets directory out of them.
 *
 * - Every container's file secrets live in one base directory on the host. A container that mounts that base,
 *   a directory inside it, or a directory above it (`/`, `/dev`, `/dev/shm`: binds are recursive, so a tmpfs
 *   mounted at the base comes along) reads every other container's secrets. Such a request is refused (403),
 *   whatever the access rules say.
 * - Host paths come from every field dockerd mounts from (a `type=proc` local volume counts as /proc): `HostConfig.Binds` sources (`/src:/dst[:mode]`),
 *   `HostConfig.Mounts[].Source` (bind; any type with an absolute source is checked), the `device` option of a
 *   local-driver volume defined inline (`Mounts[].VolumeOptions.DriverConfig.Options`) or by `POST /volumes/create`
 *   (`DriverOpts`; `type=none,o=bind,device=/path` is a bind mount of the host path when a container uses it), and
 *   every value in such a volume's mount data `o` (overlay's `lowerdir=/path`; see mountDataPaths).
 * - The host's /proc is refused the same way: every container's processes are in it, and with them their
 *   environment (/proc/<pid>/environ) and files (/proc/<pid>/root/run/secrets).
 * - Swarm services mount too (`TaskTemplate.ContainerSpec.Mounts`, the same shape as HostConfig.Mounts); their
 *   containers are created by swarmkit, not through the Defender, so the service spec is where to check.
 * - Fields are found as dockerd decodes them (go-json-fields.ts), host settings given at the top level of the body
 *   included (hostSettingsOf); option maps are Go maps, so their keys are exact.
 * - The comparison here is on the path as written, cleaned; the Defender also compares the path with symlinks
 *   resolved on the host (a link elsewhere on the host that points into the base).
 */
import { fieldValue, hostSettingsOf, isJsonObject, type JsonObject } from './go-json-fields.js';
import { cleanContainerPath } from './inject-secrets.js';
import { secretErrors } from './secret-errors.js';

/** The source of a `-v` spec when it is a host path (`/src:/dst[:mode]`); null for a named or anonymous volume. */
export function bindSource(spec: string): string | null {
  const parts = spec.split(':');
  return parts.length > 1 && parts[0]!.startsWith('/') ? parts[0]! : null;
}

/**
 * The host paths in a local volume's mount data (its `o` option, passed to mount(2) as it is). Some filesystems
 * read host paths there: `type=overlay,o=lowerdir=/a:/b,upperdir=/c,workdir=/d` mounts /a, /b and /c, so
 * `lowerdir=<the base>` shows every container's secret files. Which options of which filesystem take a path is not
 * a list we could keep complete, so every value counts as one: the data is split on the separators mount options
 * use (`,`, `=`, `:`), and a relative path is taken from `/` (dockerd's working directory). A word such as `ro` or
 * `size=64m` becomes `/ro`, `/size`, `/64m`: harmless, they reach no base.
 */
export function mountDataPaths(data: string): string[] {
  const out = new Set<string>();
  // Read twice: with `\` escaping the next character (overlayfs: `\:` is a colon in a path, `\\` a backslash), and
  // with `\` as a plain character (a filesystem that does not unescape), so neither reading hides a path.
  for (const escapes of [true, false]) {
    let path = '';
    const end = (): void => {
      if (path !== '') out.add(path.startsWith('/') ? path : `/${path}`);
      path = '';
    };
    for (let i = 0; i < data.length; i++) {
      const c = data[i]!;
      if (escapes && c === '\\' && i + 1 < data.length) path += data[++i];
      else if (c === ',' || c === '=' || c === ':') end();
      else path += c;
    }
    end();
  }
  return [...out];
}

/**
 * The host paths a local-driver volume's options stand for: its `device`, every value of its mount data `o`
 * (mountDataPaths), and /proc for `type=proc` (the local driver mounts on the host, in dockerd's namespaces: a
 * procfs volume is the host's /proc whatever the device).
 */
function volumeOptionPaths(options: unknown): string[] {
  if (!isJsonObject(options)) return [];
  const out: string[] = [];
  if (typeof options.device === 'string' && options.device !== '') out.push(options.device);
  if (typeof options.o === 'string') out.push(...mountDataPaths(options.o));
  if (typeof options.type === 'string' && options.type.trim().toLowerCase() === 'proc') out.push('/proc');
  return out;
}

/** The host paths of a `Mounts` list (HostConfig.Mounts, a service's ContainerSpec.Mounts). */
function mountListSources(mounts: unknown, where: string, out: string[]): void {
  if (Array.isArray(mounts)) {
    for (const m of mounts) {
      if (!isJsonObject(m)) continue;
      const source = fieldValue(m, 'Source', where);
      if (typeof source === 'string' && source.startsWith('/')) out.push(source);
      const volumeOptions = fieldValue(m, 'VolumeOptions', where);
      const driverConfig = isJsonObject(volumeOptions) ? fieldValue(volumeOptions, 'DriverConfig', `${where}VolumeOptions.`) : undefined;
      if (isJsonObject(driverConfig)) out.push(...volumeOptionPaths(fieldValue(driverConfig, 'Options', `${where}VolumeOptions.DriverConfig.`)));
    }
  }
}

/** Every host path a container create body mounts (see the module comment). */
export function hostMountSources(createBody: unknown): string[] {
  const hs = isJsonObject(createBody) ? hostSettingsOf(createBody) : null;
  if (hs === null) return [];
  const out: string[] = [];
  const binds = fieldValue(hs.object, 'Binds', hs.where);
  if (Array.isArray(binds)) for (const b of binds) if (typeof b === 'string' && bindSource(b) !== null) out.push(bindSource(b)!);
  mountListSources(fieldValue(hs.object, 'Mounts', hs.where), `${hs.where}Mounts[].`, out);
  return out;
}

/** Every host path a service spec (`POST /services/create`, `/services/{id}/update`) mounts. */
export function serviceMountSources(serviceSpec: unknown): string[] {
  if (!isJsonObject(serviceSpec)) return [];
  const task = fieldValue(serviceSpec, 'TaskTemplate', '');
  const spec = isJsonObject(task) ? fieldValue(task, 'ContainerSpec', 'TaskTemplate.') : undefined;
  const out: string[] = [];
  if (isJsonObject(spec)) mountListSources(fieldValue(spec, 'Mounts', 'TaskTemplate.ContainerSpec.'), 'TaskTemplate.ContainerSpec.Mounts[].', out);
  return out;
}

/** Host paths no container may mount besides the secrets base: procfs shows every process's env and root. */
export const PROCESS_VIEWS = ['/proc'] as const;

/** The host paths a `POST /volumes/create` body mounts (its `device` option; /proc for `type=proc`). */
export function volumeHostPaths(volumeBody: unknown): string[] {
  return isJsonObject(volumeBody) ? volumeOptionPaths(fieldValue(volumeBody as JsonObject, 'DriverOpts', '')) : [];
}

/** Whether host path `path` is `base`, inside it, or above it (all cleaned). */
export function reachesSecretsBase(path: string, base: string): boolean {
  const p = cleanContainerPath(path);
  const b = cleanContainerPath(base);
  return p === b || p.startsWith(`${b}/`) || p === '/' || b.startsWith(`${p}/`);
}

/** The base among `bases`, or the process view (PROCESS_VIEWS), that host path `path` reaches; null when none. */
export function secretsPathReached(path: string, bases: readonly string[]): string | null {
  return [...bases, ...PROCESS_VIEWS].find((b) => reachesSecretsBase(path, b)) ?? null;
}

/**
 * Throws 403 when one of `paths` reaches one of `bases` (the base as configured and as resolved) or a process view
 * (PROCESS_VIEWS).
 */
export function refuseSecretsBaseMounts(paths: readonly string[], bases: readonly string[]): void {
  for (const path of paths) {
    const base = secretsPathReached(path, bases);
    if (base !== null) {
      throw secretErrors.leak_denied(`[Drawbridge] the request mounts the host path ${path}, which holds or contains the containers' secrets (${base}); mount a path outside it`);
    }
  }
}
