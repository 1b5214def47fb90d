/**
 * Host paths a request asks dockerd to mount, and the rule that keeps the Defender's secrets directory out of them.
 *
 * - Every container's file secrets live in one base directory on the host. A container that mounts that base,
 *   a directory inside it, or a directory above it (`/`, `/dev`, `/dev/shm`: binds are recursive, so a tmpfs
 *   mounted at the base comes along) reads every other container's secrets. Such a request is refused (403),
 *   whatever the access rules say.
 * - Host paths come from every field dockerd mounts from: `HostConfig.Binds` sources (`/src:/dst[:mode]`),
 *   `HostConfig.Mounts[].Source` (bind; any type with an absolute source is checked), the `device` option of a
 *   local-driver volume defined inline (`Mounts[].VolumeOptions.DriverConfig.Options`) or by `POST /volumes/create`
 *   (`DriverOpts`; `type=none,o=bind,device=/path` is a bind mount of the host path when a container uses it).
 * - Fields are found as dockerd decodes them (go-json-fields.ts); option maps are Go maps, so their keys are exact.
 * - The comparison here is on the path as written, cleaned; the Defender also compares the path with symlinks
 *   resolved on the host (a link elsewhere on the host that points into the base).
 */
import { fieldValue, isJsonObject, type JsonObject } from './go-json-fields.js';
import { cleanContainerPath } from './inject-secrets.js';
import { secretErrors } from './secret-errors.js';

/** The source of a `-v` spec when it is a host path (`/src:/dst[:mode]`); null for a named or anonymous volume. */
export function bindSource(spec: string): string | null {
  const parts = spec.split(':');
  return parts.length > 1 && parts[0]!.startsWith('/') ? parts[0]! : null;
}

function deviceOption(options: unknown): string | null {
  if (!isJsonObject(options)) return null;
  const device = options.device;
  return typeof device === 'string' && device !== '' ? device : null;
}

/** Every host path a container create body mounts (see the module comment). */
export function hostMountSources(createBody: unknown): string[] {
  if (!isJsonObject(createBody)) return [];
  const hostConfig = fieldValue(createBody, 'HostConfig', '');
  if (!isJsonObject(hostConfig)) return [];
  const out: string[] = [];
  const binds = fieldValue(hostConfig, 'Binds', 'HostConfig.');
  if (Array.isArray(binds)) for (const b of binds) if (typeof b === 'string' && bindSource(b) !== null) out.push(bindSource(b)!);
  const mounts = fieldValue(hostConfig, 'Mounts', 'HostConfig.');
  if (Array.isArray(mounts)) {
    for (const m of mounts) {
      if (!isJsonObject(m)) continue;
      const where = 'HostConfig.Mounts[].';
      const source = fieldValue(m, 'Source', where);
      if (typeof source === 'string' && source.startsWith('/')) out.push(source);
      const volumeOptions = fieldValue(m, 'VolumeOptions', where);
      const driverConfig = isJsonObject(volumeOptions) ? fieldValue(volumeOptions, 'DriverConfig', `${where}VolumeOptions.`) : undefined;
      const device = isJsonObject(driverConfig) ? deviceOption(fieldValue(driverConfig, 'Options', `${where}VolumeOptions.DriverConfig.`)) : null;
      if (device !== null) out.push(device);
    }
  }
  return out;
}

/** The host path a `POST /volumes/create` body binds (its `device` option); null when none. */
export function volumeDevice(volumeBody: unknown): string | null {
  return isJsonObject(volumeBody) ? deviceOption(fieldValue(volumeBody as JsonObject, 'DriverOpts', '')) : null;
}

/** Whether host path `path` is `base`, inside it, or above it (all cleaned). */
export function reachesSecretsBase(path: string, base: string): boolean {
  const p = cleanContainerPath(path);
  const b = cleanContainerPath(base);
  return p === b || p.startsWith(`${b}/`) || p === '/' || b.startsWith(`${p}/`);
}

/** Throws 403 when one of `paths` reaches one of `bases` (the base as configured and as resolved). */
export function refuseSecretsBaseMounts(paths: readonly string[], bases: readonly string[]): void {
  for (const path of paths) {
    const base = bases.find((b) => reachesSecretsBase(path, b));
    if (base !== undefined) {
      throw secretErrors.leak_denied(`[Drawbridge] the request mounts the host path ${path}, which holds or contains the containers' secret files (${base}); mount a path outside it`);
    }
  }
}
