import { describe, it, expect } from 'vitest';
import { classifyRequest, RequestRejected } from './classify-request.js';
import { ACTIONS, ROUTES, type Route } from './route-table.js';

/** A concrete path for a template: default `{id}` → `abc123`, greedy `{name:.*}` → `sample` or a slashed name. */
function concretePath(template: string, slashed: boolean): { path: string; params: Record<string, string> } {
  const params: Record<string, string> = {};
  const path = template.replace(/\{([^:}]+)(?::([^}]*))?\}/g, (_all, name: string, pattern: string | undefined) => {
    const value = pattern === undefined ? 'abc123' : slashed ? 'reg.io/team/app:1.0' : 'sample';
    params[name] = value;
    return value;
  });
  return { path, params };
}

const rowName = (route: Route) => `${route.method} ${route.path}`;

describe('route table', () => {
  it('has well-formed, unique action names and an ACTIONS list without duplicates', () => {
    for (const route of ROUTES) expect(route.action).toMatch(/^[a-z_]+$/);
    expect(new Set(ACTIONS).size).toBe(ACTIONS.length);
    expect(ACTIONS).toContain('unknown');
    expect(new Set(ACTIONS)).toEqual(new Set([...ROUTES.map((r) => r.action), 'unknown']));
  });

  it('has no duplicate method + template rows', () => {
    const keys = ROUTES.map(rowName);
    expect(new Set(keys).size).toBe(keys.length);
  });

  it('never lets a template start like a version prefix (the classifier strips the prefix first)', () => {
    for (const route of ROUTES) {
      const head = route.path.split('/')[1] ?? '';
      if (head.includes('{')) expect(route.path).toMatch(/^\/\{[a-z]+:\.\*\}$/); // a catch-all matches either way
      else expect(head).not.toMatch(/^v[0-9.]+$/);
    }
  });

  it('marks the hijacking routes', () => {
    expect(ROUTES.filter((r) => r.hijack).map((r) => r.action).sort()).toEqual(
      ['container_attach', 'container_attachws', 'container_exec_start', 'grpc', 'session'],
    );
  });
});

describe('classifyRequest: every route, with and without a version prefix', () => {
  const rows = ROUTES.flatMap((route) =>
    ['', '/v1.41', '/v1.51', '/v1.24'].flatMap((prefix) =>
      [false, true].map((slashed) => ({ route, prefix, slashed, name: `${prefix || '(none)'} ${rowName(route)}${slashed ? ' slashed' : ''}` })),
    ),
  ).filter((row) => !row.slashed || row.prefix === '');

  it.each(rows)('$name', ({ route, prefix, slashed }) => {
    const { path, params } = concretePath(route.path, slashed);
    const c = classifyRequest(route.method, `${prefix}${path}?x=1`);
    expect(c.route).toBe(route);
    expect(c.action).toBe(route.action);
    expect(c.params).toEqual(params);
    expect(c.path).toBe(path);
    expect(c.apiVersion).toBe(prefix ? prefix.slice(2) : null);
  });
});

describe('classifyRequest: spoofing and edge cases', () => {
  it.each<[string, string, string, Record<string, string>?]>([
    // containers named like route words
    ['POST', '/containers/build/start', 'container_start', { name: 'build' }],
    ['POST', '/v1.41/containers/version/stop', 'container_stop', { name: 'version' }],
    ['POST', '/containers/auth/exec', 'container_exec_create', { name: 'auth' }],
    ['GET', '/containers/json/json', 'container_inspect', { name: 'json' }],
    ['POST', '/containers/start/start', 'container_start', { name: 'start' }],
    ['GET', '/containers/exec/json', 'container_inspect', { name: 'exec' }],
    ['POST', '/containers/create/start', 'container_start', { name: 'create' }],
    ['POST', '/containers/prune/kill', 'container_kill', { name: 'prune' }],
    ['DELETE', '/containers/json', 'container_delete', { name: 'json' }],
    ['GET', '/containers/json', 'container_list', {}],
    ['POST', '/containers/create', 'container_create', {}],
    ['GET', '/images/json/json', 'image_inspect', { name: 'json' }],
    ['GET', '/images/get/get', 'images_archive', { name: 'get' }],
    ['POST', '/networks/create/connect', 'network_connect', { id: 'create' }],
    // greedy templates take the LAST matching suffix, as Go's regexp does
    ['GET', '/containers/x/start/json', 'container_inspect', { name: 'x/start' }],
    ['POST', '/containers/x/json/kill', 'container_kill', { name: 'x/json' }],
    ['DELETE', '/containers/x/json', 'container_delete', { name: 'x/json' }],
    ['GET', '/containers/x/logs/json', 'container_inspect', { name: 'x/logs' }],
    // the checkpoint DELETE uses {name} ([^/]+): a slashed name falls through to container delete
    ['DELETE', '/containers/c1/checkpoints/cp1', 'container_checkpoint_delete', { name: 'c1', checkpoint: 'cp1' }],
    ['DELETE', '/containers/a/b/checkpoints/cp1', 'container_delete', { name: 'a/b/checkpoints/cp1' }],
    ['GET', '/containers/c1/checkpoints', 'container_checkpoint_list', { name: 'c1' }],
    // query-string spoofing: the query never routes
    ['GET', '/containers/json?x=/start', 'container_list', {}],
    ['POST', '/containers/x/stop?/exec', 'container_stop', { name: 'x' }],
    ['POST', '/containers/x/stop?', 'container_stop', { name: 'x' }],
    ['GET', '/_ping?/../containers/json', 'docker_ping', {}],
    ['POST', '/containers/x/attach?stream=1&stdin=1', 'container_attach', { name: 'x' }],
    // encoded slashes are real slashes for dockerd's mux
    ['POST', '/containers/x%2Fstart', 'container_start', { name: 'x' }],
    ['GET', '/containers%2Fjson', 'container_list', {}],
    ['GET', '/containers/a%2Fb/json', 'container_inspect', { name: 'a/b' }],
    ['GET', '/v1.41%2Fcontainers%2Fjson', 'container_list', {}],
    ['GET', '/%76%31%2E%34%31/_ping', 'docker_ping', {}],
    ['GET', '/containers/%77eb/json', 'container_inspect', { name: 'web' }],
    ['GET', '/containers/.hidden/json', 'container_inspect', { name: '.hidden' }],
    ['GET', '/containers/a..b/json', 'container_inspect', { name: 'a..b' }],
    // trailing slashes are kept by cleanPath and then have to match literally
    ['GET', '/networks/', 'network_list', {}],
    ['GET', '/volumes/', 'volume_inspect', { name: '' }],
    ['GET', '/containers/json/', 'unknown'],
    ['GET', '/_ping/', 'unknown'],
    ['GET', '/debug/pprof/', 'debug_pprof_index', {}],
    ['GET', '/debug/pprof', 'unknown'],
    // HEAD vs GET: only the routes with a HEAD row answer HEAD
    ['HEAD', '/containers/x/archive', 'container_archive_head', { name: 'x' }],
    ['GET', '/containers/x/archive', 'container_archive', { name: 'x' }],
    ['PUT', '/containers/x/archive', 'container_extract', { name: 'x' }],
    ['HEAD', '/_ping', 'docker_ping', {}],
    ['GET', '/_ping', 'docker_ping', {}],
    ['HEAD', '/containers/json', 'unknown'],
    ['HEAD', '/v1.41/info', 'unknown'],
    // wrong method, case, unknown paths
    ['PUT', '/containers/json', 'unknown'],
    ['GET', '/containers/create', 'unknown'],
    ['POST', '/containers/json', 'unknown'],
    ['POST', '/_ping', 'unknown'],
    ['PATCH', '/containers/x/update', 'unknown'],
    ['get', '/_ping', 'unknown'],
    ['GET', '/CONTAINERS/json', 'unknown'],
    ['GET', '/Containers/json', 'unknown'],
    ['GET', '/V1.41/_ping', 'unknown'],
    ['GET', '/v1.41/nonexistent', 'unknown'],
    ['GET', '/v1.41/', 'unknown'],
    ['GET', '/v1.41', 'unknown'],
    ['GET', '/', 'unknown'],
    ['GET', '/vfoo/_ping', 'unknown'],
    ['POST', '/containers/x/copy', 'container_copyfiles', { name: 'x' }],
    ['OPTIONS', '/v1.41/containers/json', 'docker_options', { anyroute: 'containers/json' }],
    ['OPTIONS', '/', 'docker_options', { anyroute: '' }],
  ])('%s %s → %s', (method, target, action, params) => {
    const c = classifyRequest(method, target);
    expect(c.action).toBe(action);
    if (action === 'unknown') expect(c.route).toBeNull();
    if (params) expect(c.params).toEqual(params);
  });

  it('reports the version and the stripped, decoded path', () => {
    expect(classifyRequest('GET', '/v1.41/containers/a%2Fb/json?all=1')).toMatchObject({
      action: 'container_inspect',
      apiVersion: '1.41',
      path: '/containers/a/b/json',
    });
    expect(classifyRequest('GET', '/v1.41/nope')).toMatchObject({ action: 'unknown', apiVersion: '1.41', path: '/nope' });
    expect(classifyRequest('GET', '/_ping').apiVersion).toBeNull();
  });

  it.each<[string, string, RegExp]>([
    ['GET', '//containers/json', /not canonical/],
    ['GET', '/containers//json', /not canonical/],
    ['GET', '/containers/json//', /not canonical/],
    ['GET', '/containers/./json', /not canonical/],
    ['GET', '/./_ping', /not canonical/],
    ['GET', '/containers/x/../json', /not canonical/],
    ['GET', '/containers/json/.', /not canonical/],
    ['GET', '/containers/json/..', /not canonical/],
    ['GET', '/..', /not canonical/],
    ['GET', '/v1.41/../_ping', /not canonical/],
    ['GET', '/containers/%2E%2E/json', /not canonical/],
    ['GET', '/containers/x%2F..%2Fy/json', /not canonical/],
    ['GET', '/containers/x%2F%2Fy/json', /not canonical/],
    ['GET', '/containers/%zz/json', /hex digits/],
    ['GET', '/containers/%4/json', /hex digits/],
    ['GET', '/_ping%', /hex digits/],
    ['GET', '/containers/x%2/json', /hex digits/],
    ['GET', '/containers/%ff/json', /UTF-8/],
    ['GET', '/containers/%c0%af/json', /UTF-8/],
    ['GET', '/containers/%ed%a0%80/json', /UTF-8/],
    ['GET', '/containers/%00/json', /control/],
    ['GET', '/containers/x%0a/json', /control/],
    ['GET', '/containers/x%0d%0a/json', /control/],
    ['GET', '/containers/\u0000/json', /control/],
    ['GET', '/containers/a b/json', /control, space/],
    ['GET', '/containers/\t/json', /control, space/],
    ['GET', '/containers/caf\u00e9/json', /non-ASCII/],
    ['GET', '/containers/json#/x', /'#'/],
    ['GET', '/containers/x%23/json', /'#'/],
    ['GET', '/containers/x%3F/json', /'\?'/],
    ['GET', '/containers/x\\y/json', /'\\'/],
    ['GET', '/containers/x%5Cy/json', /'\\'/],
    ['GET', 'http://localhost/_ping', /origin-form/],
    ['OPTIONS', '*', /origin-form/],
    ['GET', 'containers/json', /origin-form/],
    ['GET', '', /origin-form/],
    ['GET', '?/_ping', /origin-form/],
    ['GET', '/v1.12/containers/json', /older than 1\.24/],
    ['POST', '/v1.23/containers/x/start', /older than 1\.24/],
    ['GET', '/v0.99/_ping', /older than 1\.24/],
    ['GET', '/v1.12/nonexistent', /older than 1\.24/],
    ['GET', '/v1/_ping', /<major>\.<minor>/],
    ['GET', '/v1.41.0/_ping', /<major>\.<minor>/],
    ['GET', '/v./_ping', /<major>\.<minor>/],
    ['GET', '/v1..41/_ping', /<major>\.<minor>/],
    ['GET', '/v.41/_ping', /<major>\.<minor>/],
  ])('%s %j is rejected', (method, target, reason) => {
    let thrown: unknown;
    try {
      classifyRequest(method, target);
    } catch (error) {
      thrown = error;
    }
    expect(thrown).toBeInstanceOf(RequestRejected);
    const rejected = thrown as RequestRejected;
    expect(rejected.status).toBe(400);
    expect(rejected.reason).toMatch(reason);
  });

  it('accepts the minimum version and newer ones', () => {
    expect(classifyRequest('GET', '/v1.24/_ping').apiVersion).toBe('1.24');
    expect(classifyRequest('GET', '/v1.100/_ping').apiVersion).toBe('1.100');
    expect(classifyRequest('GET', '/v2.0/_ping').action).toBe('docker_ping');
  });
});
