/**
 * What `drawbridge env <host>` prints: the environment that points the docker CLI at one Drawbridge host without
 * a context, for `eval "$(drawbridge env dev-a)"`.
 *
 * - DOCKER_CERT_PATH is the context's own TLS endpoint dir (`contexts/tls/<id>/docker`), which holds exactly
 *   the ca.pem, cert.pem and key.pem the CLI looks for there; nothing is copied.
 * - Values are quoted for POSIX shells (single quotes; a quote inside becomes '\''), so paths with spaces or
 *   `$` stay one word and expand to nothing.
 * - DOCKER_HOST set this way wins over any context, DOCKER_CONTEXT included (docker/cli resolveContextName).
 */
import { ContextStoreError, type DockerContextStore, type StoredContext } from './docker-context-store.js';

/** POSIX-shell quoting: bare when only safe characters, else single-quoted. */
export function shellQuote(value: string): string {
  if (value !== '' && /^[A-Za-z0-9_@%+=:,./-]+$/.test(value)) return value;
  return `'${value.replace(/'/g, `'\\''`)}'`;
}

export interface DockerEnv {
  readonly DOCKER_HOST: string;
  readonly DOCKER_TLS_VERIFY: '1';
  readonly DOCKER_CERT_PATH: string;
}

/** The variables for a stored context. */
export function dockerEnvFor(context: StoredContext): DockerEnv {
  if (!context.dockerHost) throw new ContextStoreError('CONTEXT_NOT_FOUND', `context "${context.name}" has no docker endpoint`);
  return { DOCKER_HOST: context.dockerHost, DOCKER_TLS_VERIFY: '1', DOCKER_CERT_PATH: context.tlsEndpointPath };
}

/** `export DOCKER_HOST=… DOCKER_TLS_VERIFY=1 DOCKER_CERT_PATH=…` plus a newline. */
export function formatEnvCommand(env: DockerEnv): string {
  const pairs = (Object.keys(env) as (keyof DockerEnv)[]).map((k) => `${k}=${shellQuote(env[k])}`);
  return `export ${pairs.join(' ')}\n`;
}

/** The `env` output for a Drawbridge host, given by host name (`dev-a`) or context name (`drawbridge-dev-a`). */
export async function envCommand(store: DockerContextStore, host: string): Promise<string> {
  const context = await store.findHost(host);
  if (!context) throw new ContextStoreError('CONTEXT_NOT_FOUND', `no Drawbridge context for "${host}"; run drawbridge hosts to see yours`);
  return formatEnvCommand(dockerEnvFor(context));
}
