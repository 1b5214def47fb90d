/**
 * Pinning a container reference to the container the Defender checked.
 *
 * - A decision made from a container's labels (leak paths, sharing, start) looks the container up by the name or
 *   id prefix the client gave. Forwarded as it was, that reference is resolved again by dockerd later, and a
 *   rename or a remove-and-create in between (`docker rename secret x; docker rename plain secret`) makes dockerd
 *   act on a container that was never checked. So the request is forwarded with the reference replaced by the
 *   full id the lookup returned: ids are immutable and never reused, and dockerd resolves a full id first.
 * - The path form is rebuilt from the canonical (decoded) path the classifier matched, with the request's own
 *   version prefix; the query string is kept byte for byte, except for the parameter that names the container in
 *   the query (`container=` of POST /commit, `networkmode=container:` of POST /build), where every occurrence (as
 *   Go's url.ParseQuery decodes keys, `+` and `%XX` included) is dropped and the pinned one is put first
 *   (`r.Form.Get` takes the first).
 * - A full id is 64 lower-case hex digits; anything else from a lookup is refused, never forwarded.
 */
import { secretErrors } from './secret-errors.js';

export const FULL_ID = /^[0-9a-f]{64}$/;

export interface PinnedRoute {
  readonly action: string;
  readonly params: Readonly<Record<string, string>>;
  readonly apiVersion: string | null;
  /** The decoded, version-stripped path (classify-request.ts). */
  readonly path: string;
}

function checkId(id: string): string {
  if (!FULL_ID.test(id)) throw secretErrors.secret_unavailable('[Drawbridge] dockerd did not give a container id for this container; try again');
  return id;
}

function splitTarget(rawTarget: string): { query: string | null } {
  const q = rawTarget.indexOf('?');
  return { query: q < 0 ? null : rawTarget.slice(q + 1) };
}

/** Go's url.QueryUnescape of a query key, or null when Go would refuse it (dockerd then answers 400 itself). */
function queryKey(pair: string): string | null {
  const eq = pair.indexOf('=');
  const raw = (eq < 0 ? pair : pair.slice(0, eq)).replace(/\+/g, ' ');
  try {
    return decodeURIComponent(raw);
  } catch {
    return null;
  }
}

/** `query` with every `name=` pair replaced by one `name=value` in front. */
export function pinQueryParam(query: string | null, name: string, value: string): string {
  const kept = (query ?? '').split('&').filter((pair) => pair !== '' && queryKey(pair) !== name);
  return [`${encodeURIComponent(name)}=${encodeURIComponent(value)}`, ...kept].join('&');
}

/** Actions that name their container in the query: the parameter, and its value for a full id. */
const QUERY_REFERENCES: Readonly<Record<string, { readonly name: string; value(id: string): string }>> = {
  container_commit: { name: 'container', value: (id) => id },
  image_build: { name: 'networkmode', value: (id) => `container:${id}` },
};

/** The request target to forward: `route`'s container reference (path `{name}`, or QUERY_REFERENCES) pinned to `id`. */
export function pinContainerTarget(route: PinnedRoute, rawTarget: string, id: string): string {
  checkId(id);
  const { query } = splitTarget(rawTarget);
  const prefix = route.apiVersion === null ? '' : `/v${route.apiVersion}`;
  const inQuery = QUERY_REFERENCES[route.action];
  if (inQuery !== undefined) return `${prefix}${route.path}?${pinQueryParam(query, inQuery.name, inQuery.value(id))}`;
  const name = route.params.name;
  const head = `/containers/${name}`;
  if (name === undefined || !route.path.startsWith(head)) throw new Error(`no container reference to pin in ${route.action}`);
  return `${prefix}/containers/${id}${route.path.slice(head.length)}${query === null ? '' : `?${query}`}`;
}
