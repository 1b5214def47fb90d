/**
 * Maps a Docker Engine API request (method + request-target) to the route dockerd would dispatch it to, and so
 * to the action access rules are written against. Each step mirrors Go's net/http + gorilla/mux as dockerd
 * configures them; where Go would do something we cannot follow safely, the request is rejected (400) instead.
 *
 * - The target must be printable ASCII (0x21-0x7E). Go refuses control bytes itself (net/url: "invalid control
 *   character in URL") and a space ends the target in the request line; raw bytes >= 0x80 are refused because
 *   their meaning depends on how our caller turned the request line into a string.
 * - A raw `#` is refused: Go's ParseRequestURI does not cut fragments, so dockerd routes `#` as part of the
 *   path, while WHATWG/Node URL parsers drop everything after it. One target, two paths: reject.
 * - The query (after the first `?`) is split off and ignored: mux routes on URL.Path only, so `?x=/start`
 *   cannot change the route.
 * - The target must be origin-form (start with `/`). Go also accepts absolute-form (`http://h/p`) and `*`; the
 *   docker CLI sends neither, and `*` is how the HTTP/2 preface starts (dockerd serves gRPC over h2c).
 * - The path is percent-decoded as net/url decodes URL.Path: every `%XX` becomes its byte, and dockerd does not
 *   set UseEncodedPath, so `%2F` IS a `/` for routing (`/containers/a%2Fb/json` inspects `a/b`). A `%` without
 *   two hex digits is a 400 in Go too. Bytes that are not valid UTF-8 are refused (Go routes them; no Docker
 *   object name contains them, and a JS string cannot hold them faithfully).
 * - Decoded control characters, `?`, `#` and `\` are refused: Go routes them literally, no Docker object name
 *   contains them, and any layer that re-serialises or re-parses the path would read them differently.
 * - A path that mux's cleanPath would change is refused: `//`, `.` and `..` segments (decoded ones included).
 *   cleanPath is path.Clean that keeps a trailing slash, so `/networks/` is clean and `/containers/json/` is
 *   merely unmatched. dockerd answers an unclean path with a 301 to the clean one instead of routing it; we do
 *   not guess which request the client sends next.
 * - An optional `/v{version:[0-9.]+}` prefix is stripped (moby's versionMatcher). The version must be
 *   `<major>.<minor>` and at least 1.24: older versions carry legacy semantics we do not inspect (e.g. a
 *   HostConfig body on container start). Without a prefix dockerd uses its newest version.
 * - Routes are anchored regexes compiled once from ROUTES; the method is compared exactly (mux is
 *   case-sensitive and does not serve HEAD from a GET route); the first match in table order wins, as in mux.
 *   Nothing matched → action `unknown`, route null.
 */
import { DrawbridgeError } from '../errors/drawbridge-error.js';
import { ROUTES, type Route } from './route-table.js';

export const MIN_API_VERSION = '1.24';

export interface Classification {
  /** `unknown` when no route matched. */
  readonly action: string;
  readonly route: Route | null;
  /** Template variables, decoded: `{ name: 'web' }`. */
  readonly params: Readonly<Record<string, string>>;
  /** From the `/v<version>` prefix; null when the request had none. */
  readonly apiVersion: string | null;
  /** The decoded, version-stripped path that was matched. */
  readonly path: string;
}

/** A request dockerd would not route as it stands (it would 400 or redirect it); never forward it. */
export class RequestRejected extends DrawbridgeError {
  override readonly name: string = 'RequestRejected';
  declare readonly status: 400;
  constructor(readonly reason: string) {
    super('request_rejected', `Request rejected: ${reason}`, 400, true);
  }
}

interface CompiledRoute {
  readonly route: Route;
  readonly re: RegExp;
  readonly names: readonly string[];
}

interface MethodIndex {
  /** Routes whose template starts with this literal segment, plus (in table order) those starting with a variable. */
  readonly bySegment: Map<string, CompiledRoute[]>;
  readonly wildcard: CompiledRoute[];
}

const VERSION_PREFIX = /^\/v([0-9.]+)(\/.*)$/s;
const VERSION_FORM = /^([0-9]{1,5})\.([0-9]{1,5})$/;
const MIN_MAJOR = 1;
const MIN_MINOR = 24;
const BAD_ESCAPE = /%(?![0-9A-Fa-f]{2})/;
const FORBIDDEN_DECODED = /[\u0000-\u001f\u007f?#\\]/;

const INDEX: ReadonlyMap<string, MethodIndex> = buildIndex(ROUTES);

export function classifyRequest(method: string, rawTarget: string): Classification {
  const path = canonicalPath(rawTarget);
  let apiVersion: string | null = null;
  let matchPath = path;
  // Every template starts with a literal segment that cannot look like a version, or is a catch-all that
  // matches with and without the prefix alike (tested), so stripping first picks the same route as mux, which
  // tries `/v{version}<template>` then `<template>` for each route in turn.
  const prefixed = VERSION_PREFIX.exec(path);
  if (prefixed) {
    apiVersion = checkVersion(prefixed[1]!);
    matchPath = prefixed[2]!;
  }
  const index = INDEX.get(method);
  if (index) {
    const candidates = index.bySegment.get(firstSegment(matchPath)) ?? index.wildcard;
    for (const candidate of candidates) {
      const match = candidate.re.exec(matchPath);
      if (match) {
        const params: Record<string, string> = {};
        candidate.names.forEach((name, i) => {
          params[name] = match[i + 1] ?? '';
        });
        return { action: candidate.route.action, route: candidate.route, params: Object.freeze(params), apiVersion, path: matchPath };
      }
    }
  }
  return { action: 'unknown', route: null, params: Object.freeze({}), apiVersion, path: matchPath };
}

function canonicalPath(rawTarget: string): string {
  for (let i = 0; i < rawTarget.length; i++) {
    const c = rawTarget.charCodeAt(i);
    if (c < 0x21 || c > 0x7e) throw new RequestRejected('the request target contains a control, space or non-ASCII character');
    if (c === 0x23) throw new RequestRejected("the request target contains '#'");
  }
  const q = rawTarget.indexOf('?');
  const rawPath = q < 0 ? rawTarget : rawTarget.slice(0, q);
  if (rawPath[0] !== '/') throw new RequestRejected("the request target must be origin-form (start with '/')");
  let path = rawPath;
  if (rawPath.includes('%')) {
    if (BAD_ESCAPE.test(rawPath)) throw new RequestRejected("the path has a '%' not followed by two hex digits");
    try {
      path = decodeURIComponent(rawPath);
    } catch {
      throw new RequestRejected('the percent-escapes in the path do not decode to UTF-8');
    }
  }
  if (FORBIDDEN_DECODED.test(path)) throw new RequestRejected("the decoded path contains a control character, '?', '#' or '\\'");
  if ((path.includes('//') || path.includes('/.')) && cleanPath(path) !== path) {
    throw new RequestRejected("the path is not canonical ('//', '.' or '..' segments); dockerd would redirect it");
  }
  return path;
}

/** mux's cleanPath for a rooted path: path.Clean (lexical), then the trailing slash put back. */
function cleanPath(p: string): string {
  const kept: string[] = [];
  for (const segment of p.split('/')) {
    if (segment === '' || segment === '.') continue;
    if (segment === '..') kept.pop(); // at the root, `..` is dropped
    else kept.push(segment);
  }
  const cleaned = `/${kept.join('/')}`;
  return p.endsWith('/') && cleaned !== '/' ? `${cleaned}/` : cleaned;
}

function checkVersion(version: string): string {
  const form = VERSION_FORM.exec(version);
  if (!form) throw new RequestRejected(`the API version in the path must be <major>.<minor>, at least ${MIN_API_VERSION}`);
  const major = Number(form[1]);
  const minor = Number(form[2]);
  if (major < MIN_MAJOR || (major === MIN_MAJOR && minor < MIN_MINOR)) {
    throw new RequestRejected(`API version ${version} is older than ${MIN_API_VERSION}, the minimum Drawbridge accepts`);
  }
  return version;
}

function firstSegment(path: string): string {
  const end = path.indexOf('/', 1);
  return end < 0 ? path.slice(1) : path.slice(1, end);
}

function buildIndex(routes: readonly Route[]): Map<string, MethodIndex> {
  const index = new Map<string, MethodIndex>();
  for (const route of routes) {
    const compiled: CompiledRoute = { route, ...compileTemplate(route.path) };
    let forMethod = index.get(route.method);
    if (!forMethod) {
      forMethod = { bySegment: new Map(), wildcard: [] };
      index.set(route.method, forMethod);
    }
    const head = firstSegment(route.path);
    if (head.includes('{')) {
      forMethod.wildcard.push(compiled);
      for (const list of forMethod.bySegment.values()) list.push(compiled);
    } else {
      let list = forMethod.bySegment.get(head);
      if (!list) {
        list = [...forMethod.wildcard];
        forMethod.bySegment.set(head, list);
      }
      list.push(compiled);
    }
  }
  return index;
}

/**
 * Compiles a mux template the way mux does: literal text quoted, `{name}` → `([^/]+)`, `{name:pattern}` →
 * `(pattern)`, anchored at both ends. The `s` flag makes `.` match like Go's `.` on the paths we let through
 * (Go's excludes only `\n`, which canonicalPath has already refused; JS's would also exclude `\r`, U+2028, U+2029).
 */
function compileTemplate(template: string): { re: RegExp; names: string[] } {
  let source = '^';
  const names: string[] = [];
  let at = 0;
  while (at < template.length) {
    const open = template.indexOf('{', at);
    if (open < 0) {
      source += escapeRegExp(template.slice(at));
      break;
    }
    source += escapeRegExp(template.slice(at, open));
    let depth = 0;
    let close = -1;
    for (let i = open; i < template.length && close < 0; i++) {
      if (template[i] === '{') depth++;
      else if (template[i] === '}' && --depth === 0) close = i;
    }
    if (close < 0) throw new Error(`route template ${template}: unbalanced braces`);
    const inner = template.slice(open + 1, close);
    const colon = inner.indexOf(':');
    const name = colon < 0 ? inner : inner.slice(0, colon);
    const pattern = colon < 0 ? '[^/]+' : inner.slice(colon + 1);
    if (name === '' || pattern === '' || names.includes(name)) throw new Error(`route template ${template}: bad variable ${inner}`);
    names.push(name);
    source += `(${pattern})`;
    at = close + 1;
  }
  source += '$';
  // mux refuses capturing groups inside a variable's pattern; they would shift our group numbers too.
  if (new RegExp(`${source}|`, 's').exec('')!.length - 1 !== names.length) {
    throw new Error(`route template ${template}: capturing group inside a variable pattern`);
  }
  return { re: new RegExp(source, 's'), names };
}

function escapeRegExp(literal: string): string {
  return literal.replace(/[\\^$.*+?()[\]{}|/]/g, '\\$&');
}
