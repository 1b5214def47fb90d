/**
 * Every route dockerd's API mux serves (API v1.24 up to the newest), as data.
 *
 * - Source of truth: moby `daemon/server/router/**` (older trees: `api/server/router/**`) and `api/swagger.yaml`.
 *   Rows are in dockerd's registration order: routers in the order `buildRouters` lists them, routes in the order
 *   each router file lists them. gorilla/mux answers with the FIRST registered route that matches, and templates
 *   such as `/containers/{name:.*}/json` are greedy, so the order is part of the data.
 * - `path` is moby's template verbatim, regex constraints included (`{name}` means `[^/]+`).
 * - Routes removed from moby master but still served by daemons we meet (dockerd 20.10) stay in the table, at
 *   the position the old daemon registered them (`/containers/{name:.*}/copy`).
 * - Action names follow Prisma Cloud's (`container_list`, `images_archive`, `volume_remove`, …); routes Prisma
 *   never named get names in the same `<object>_<verb>` style. One route, one action; routes share an action only
 *   when dockerd serves them with the same handler (`/networks` and `/networks/`, `/images/get` and
 *   `/images/{name}/get`, GET and HEAD `/_ping`).
 * - `body` says what the handler reads: `json` it decodes a JSON document, `stream` it consumes a byte stream
 *   (tar, build context), `none` nothing. Note that nearly every handler also calls `r.ParseForm()`, which for
 *   POST/PUT with `Content-Type: application/x-www-form-urlencoded` reads the body as extra query parameters.
 * - `hijack` marks handlers that may take over the connection after the response head (raw stream, websocket,
 *   h2c); after that the bytes on the connection are no longer HTTP requests.
 */

export type BodyKind = 'none' | 'json' | 'stream';

export interface Route {
  /** OPTIONS exists only for the CORS catch-all of the system router. */
  readonly method: 'GET' | 'HEAD' | 'POST' | 'PUT' | 'DELETE' | 'OPTIONS';
  readonly path: string;
  readonly action: string;
  readonly body: BodyKind;
  readonly hijack?: boolean;
}

type M = Route['method'];
const r = (method: M, path: string, action: string, body: BodyKind = 'none', hijack = false): Route =>
  Object.freeze(hijack ? { method, path, action, body, hijack } : { method, path, action, body });

export const ROUTES: readonly Route[] = Object.freeze([
  // moby daemon/server/router/checkpoint/checkpoint.go (experimental; registered before the container router so
  // its DELETE is not masked by DELETE /containers/{name:.*}; without --experimental they still match and fail)
  r('GET', '/containers/{name:.*}/checkpoints', 'container_checkpoint_list'),
  r('POST', '/containers/{name:.*}/checkpoints', 'container_checkpoint_create', 'json'),
  r('DELETE', '/containers/{name}/checkpoints/{checkpoint}', 'container_checkpoint_delete'),

  // moby daemon/server/router/container/container.go
  r('HEAD', '/containers/{name:.*}/archive', 'container_archive_head'),
  r('GET', '/containers/json', 'container_list'),
  r('GET', '/containers/{name:.*}/export', 'container_export'),
  r('GET', '/containers/{name:.*}/changes', 'container_changes'),
  r('GET', '/containers/{name:.*}/json', 'container_inspect'),
  r('GET', '/containers/{name:.*}/top', 'container_top'),
  r('GET', '/containers/{name:.*}/logs', 'container_logs'),
  r('GET', '/containers/{name:.*}/stats', 'container_stats'),
  r('GET', '/containers/{name:.*}/attach/ws', 'container_attachws', 'none', true),
  r('GET', '/exec/{id:.*}/json', 'container_exec_inspect'),
  r('GET', '/containers/{name:.*}/archive', 'container_archive'),
  r('POST', '/containers/create', 'container_create', 'json'),
  r('POST', '/containers/{name:.*}/kill', 'container_kill'),
  r('POST', '/containers/{name:.*}/pause', 'container_pause'),
  r('POST', '/containers/{name:.*}/unpause', 'container_unpause'),
  r('POST', '/containers/{name:.*}/restart', 'container_restart'),
  // start reads no body at >= 1.24 (it refuses one); older versions decoded a HostConfig here.
  r('POST', '/containers/{name:.*}/start', 'container_start'),
  r('POST', '/containers/{name:.*}/stop', 'container_stop'),
  r('POST', '/containers/{name:.*}/wait', 'container_wait'),
  r('POST', '/containers/{name:.*}/resize', 'container_resize'),
  r('POST', '/containers/{name:.*}/attach', 'container_attach', 'none', true),
  // api/server/router/container/container.go up to v25 (dockerd 20.10): deprecated, errors out since API 1.12.
  r('POST', '/containers/{name:.*}/copy', 'container_copyfiles', 'json'),
  r('POST', '/containers/{name:.*}/exec', 'container_exec_create', 'json'),
  r('POST', '/exec/{name:.*}/start', 'container_exec_start', 'json', true),
  r('POST', '/exec/{name:.*}/resize', 'container_exec_resize'),
  r('POST', '/containers/{name:.*}/rename', 'container_rename'),
  r('POST', '/containers/{name:.*}/update', 'container_update', 'json'),
  r('POST', '/containers/prune', 'container_prune'),
  r('POST', '/commit', 'container_commit', 'json'),
  r('PUT', '/containers/{name:.*}/archive', 'container_extract', 'stream'),
  r('DELETE', '/containers/{name:.*}', 'container_delete'),

  // moby daemon/server/router/image/image.go
  r('GET', '/images/json', 'image_list'),
  r('GET', '/images/search', 'images_search'),
  r('GET', '/images/get', 'images_archive'),
  r('GET', '/images/{name:.*}/get', 'images_archive'),
  r('GET', '/images/{name:.*}/history', 'image_history'),
  r('GET', '/images/{name:.*}/json', 'image_inspect'),
  r('GET', '/images/{name:.*}/attestations', 'image_attestations'), // API >= 1.55
  r('POST', '/images/load', 'images_load', 'stream'),
  // create = pull, or import when fromSrc=- (the body is then the root filesystem tar)
  r('POST', '/images/create', 'image_create', 'stream'),
  // dockerd 20.10 decodes an AuthConfig JSON body when X-Registry-Auth is absent (legacy clients)
  r('POST', '/images/{name:.*}/push', 'image_push', 'json'),
  r('POST', '/images/{name:.*}/tag', 'image_tag'),
  r('POST', '/images/prune', 'image_prune'),
  r('DELETE', '/images/{name:.*}', 'image_delete'),

  // moby daemon/server/router/system/system.go
  r('OPTIONS', '/{anyroute:.*}', 'docker_options'), // CORS pre-flight: every OPTIONS request lands here
  r('GET', '/_ping', 'docker_ping'),
  r('HEAD', '/_ping', 'docker_ping'),
  r('GET', '/events', 'docker_events'),
  r('GET', '/info', 'docker_info'),
  r('GET', '/version', 'docker_version'),
  r('GET', '/system/df', 'docker_system_df'),
  r('POST', '/auth', 'docker_check_auth', 'json'),

  // moby daemon/server/router/volume/volume.go
  r('GET', '/volumes', 'volume_list'),
  r('GET', '/volumes/{name:.*}', 'volume_inspect'),
  r('POST', '/volumes/create', 'volume_create', 'json'),
  r('POST', '/volumes/prune', 'volume_prune'),
  r('PUT', '/volumes/{name:.*}', 'volume_update', 'json'), // API >= 1.42 (cluster volumes)
  r('DELETE', '/volumes/{name:.*}', 'volume_remove'),

  // moby daemon/server/router/build/build.go
  r('POST', '/build', 'image_build', 'stream'),
  r('POST', '/build/prune', 'build_prune'),
  r('POST', '/build/cancel', 'build_cancel'),

  // moby daemon/server/router/session/session.go (BuildKit session, upgraded to h2c)
  r('POST', '/session', 'session', 'none', true),

  // moby daemon/server/router/swarm/cluster.go
  r('POST', '/swarm/init', 'swarm_init', 'json'),
  r('POST', '/swarm/join', 'swarm_join', 'json'),
  r('POST', '/swarm/leave', 'swarm_leave'),
  r('GET', '/swarm', 'swarm_inspect'),
  r('GET', '/swarm/unlockkey', 'swarm_unlockkey'),
  r('POST', '/swarm/update', 'swarm_update', 'json'),
  r('POST', '/swarm/unlock', 'swarm_unlock', 'json'),
  r('GET', '/services', 'service_list'),
  r('GET', '/services/{id}', 'service_inspect'),
  r('POST', '/services/create', 'service_create', 'json'),
  r('POST', '/services/{id}/update', 'service_update', 'json'),
  r('DELETE', '/services/{id}', 'service_remove'),
  r('GET', '/services/{id}/logs', 'service_logs'),
  r('GET', '/nodes', 'node_list'),
  r('GET', '/nodes/{id}', 'node_inspect'),
  r('DELETE', '/nodes/{id}', 'node_remove'),
  r('POST', '/nodes/{id}/update', 'node_update', 'json'),
  r('GET', '/tasks', 'task_list'),
  r('GET', '/tasks/{id}', 'task_inspect'),
  r('GET', '/tasks/{id}/logs', 'task_logs'),
  r('GET', '/secrets', 'secret_list'),
  r('POST', '/secrets/create', 'secret_create', 'json'),
  r('DELETE', '/secrets/{id}', 'secret_remove'),
  r('GET', '/secrets/{id}', 'secret_inspect'),
  r('POST', '/secrets/{id}/update', 'secret_update', 'json'),
  r('GET', '/configs', 'config_list'),
  r('POST', '/configs/create', 'config_create', 'json'),
  r('DELETE', '/configs/{id}', 'config_remove'),
  r('GET', '/configs/{id}', 'config_inspect'),
  r('POST', '/configs/{id}/update', 'config_update', 'json'),

  // moby daemon/server/router/plugin/plugin.go
  r('GET', '/plugins', 'plugin_list'),
  r('GET', '/plugins/{name:.*}/json', 'plugin_inspect'),
  r('GET', '/plugins/privileges', 'plugin_privileges'),
  r('DELETE', '/plugins/{name:.*}', 'plugin_remove'),
  r('POST', '/plugins/{name:.*}/enable', 'plugin_enable'),
  r('POST', '/plugins/{name:.*}/disable', 'plugin_disable'),
  r('POST', '/plugins/pull', 'plugin_install', 'json'), // body: the privileges the user accepted
  r('POST', '/plugins/{name:.*}/push', 'plugin_push'),
  r('POST', '/plugins/{name:.*}/upgrade', 'plugin_upgrade', 'json'),
  r('POST', '/plugins/{name:.*}/set', 'plugin_set', 'json'),
  r('POST', '/plugins/create', 'plugin_create', 'stream'),

  // moby daemon/server/router/distribution/distribution.go
  r('GET', '/distribution/{name:.*}/json', 'distribution_inspect'),

  // moby daemon/server/router/network/network.go (dockerd 20.10 registers it after grpc; the first segments are
  // disjoint, so the order between the two routers changes nothing)
  r('GET', '/networks', 'network_list'),
  r('GET', '/networks/', 'network_list'),
  r('GET', '/networks/{id:.+}', 'network_inspect'),
  r('POST', '/networks/create', 'network_create', 'json'),
  r('POST', '/networks/{id:.*}/connect', 'network_connect', 'json'),
  r('POST', '/networks/{id:.*}/disconnect', 'network_disconnect', 'json'),
  r('POST', '/networks/prune', 'network_prune'),
  r('DELETE', '/networks/{id:.*}', 'network_remove'),

  // moby daemon/server/router/debug/debug.go (pprof and expvar on the API socket). Master registers them as GET,
  // with and without the version prefix; dockerd <= 27 (api/server/server.go) registers `/debug` + path for ANY
  // method and without the prefix. Other methods therefore classify as `unknown` here (denied), never as another
  // action.
  r('GET', '/debug/vars', 'debug_vars'),
  r('GET', '/debug/pprof/', 'debug_pprof_index'),
  r('GET', '/debug/pprof/cmdline', 'debug_pprof_cmdline'),
  r('GET', '/debug/pprof/profile', 'debug_pprof_profile'),
  r('GET', '/debug/pprof/symbol', 'debug_pprof_symbol'),
  r('GET', '/debug/pprof/trace', 'debug_pprof_trace'),
  r('GET', '/debug/pprof/{name}', 'debug_pprof_lookup'),

  // moby daemon/server/router/grpc/grpc.go (BuildKit gRPC over an h2c upgrade)
  r('POST', '/grpc', 'grpc', 'none', true),
]);

/** Every distinct action in ROUTES, in table order, then `unknown` (a request no route matches). */
export const ACTIONS: readonly string[] = Object.freeze([...new Set(ROUTES.map((route) => route.action)), 'unknown']);
