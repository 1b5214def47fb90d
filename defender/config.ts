/**
 * `drawbridge defender` settings from flags and an optional YAML config file (same keys, camelCase).
 *
 * - Flags win over the file; the file wins over defaults.
 * - Unknown flags and unknown file keys are errors (a typo must not drop a security setting).
 * - Two modes, never mixed: rules and TLS material from files (`--rules`, `--tls-*`), or everything from a
 *   Console (`--console`). There is no insecure or allow-all mode in either.
 */
import { readFileSync } from 'node:fs';
import { homedir, hostname } from 'node:os';
import { createHash } from 'node:crypto';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { defenderErrors } from './errors.js';

/** The Defender's own version, reported to the Console. */
export const DEFENDER_VERSION = '0.1.0';

export const DEFENDER_USAGE = `Usage: drawbridge defender [options]

Puts role-based access control in front of the Docker Engine: an mTLS listener that authorises every
Engine API request by access rules and forwards what is allowed to dockerd. The rules and certificates come
either from files, or from a Drawbridge Console.

Options (or the same keys in --config FILE, camelCase: listen, docker, tlsCa, …):
  --listen ADDR          where to listen: HOST:PORT (default 0.0.0.0:9998; with --console, what the Defender asks
                         for at enrolment: the Console decides afterwards, TCP or a UNIX socket)
  --docker URL           dockerd: unix:///path or tcp://host:port (default unix:///var/run/docker.sock)
  --host-name NAME       the name rules' "hosts" match (default: this machine's hostname)
  --audit-log FILE|-     JSON lines, one per decision (default -: standard output; with --console: only if given,
                         the audit always goes to the Console)
  --metrics ADDR         serve Prometheus metrics on HOST:PORT/metrics (default: off)
  --max-body BYTES       largest request body inspected in memory (default 16777216)
  --shutdown-timeout S   how long running streams may finish on SIGTERM (default 10)
  --config FILE          read options from a YAML file
  -h, --help             show this help

Rules and TLS from files:
  --tls-ca FILE          CA that client certificates must chain to (required)
  --tls-cert FILE        the Defender's server certificate (required)
  --tls-key FILE         its private key (required)
  --rules FILE           access rules (YAML), reloaded when it changes (required)

From a Console (instead of the four above):
  --console URL          the Console, https://HOST:PORT
  --join-token TOKEN     enrols this Defender on its first start (created by a Console admin); ignored once
                         enrolled, unless --re-enroll
  --console-ca FILE      to enrol: the Console's CA certificate (GET /api/v1/ca), or
  --console-pin PIN      to enrol: the Console's public key pin, sha256//BASE64 (as the Console shows it)
  --state DIR            keys, certificates, the encrypted policy cache and the audit spool (default
                         /var/lib/drawbridge/defender as root, ~/.drawbridge/defender otherwise)
  --address NAME|IP      another name users reach this Defender by, for its certificate (repeatable;
                         localhost and 127.0.0.1 are always included)
  --re-enroll            enrol again with --join-token, replacing the saved keys and certificates
  --socket-group GROUP   group of the UNIX socket when the Console picks one (mode 0660; default: the
                         Defender's own group)
  --secrets-dir DIR      where file secrets live on the host, in memory: a tmpfs the Defender mounts there, or
                         (when it may not mount) a directory on /dev/shm (default /dev/shm/drawbridge-secrets-<id of
                         --state>); while it is under /dev/shm, containers may not use --ipc host. The
                         Defender makes it itself: a link or another user's directory there is refused
`;

const hostPort = z
  .string()
  .regex(/^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]*):\d{1,5}$/, 'must be HOST:PORT, e.g. 0.0.0.0:9998');

const PIN = /^sha256\/\/[A-Za-z0-9+/]{43}=$/;

/** The dockerd endpoints the Defender can stand in front of (`--docker`). */
export const DOCKER_ENDPOINT = /^(unix:\/\/\/.+|tcp:\/\/[^/]+:\d+\/?)$/;
export const DOCKER_ENDPOINT_FORMS = 'unix:///path/to/docker.sock or tcp://host:port';

const configSchema = z.strictObject({
  listen: hostPort.default('0.0.0.0:9998'),
  docker: z.string().regex(DOCKER_ENDPOINT, `must be ${DOCKER_ENDPOINT_FORMS}`).default('unix:///var/run/docker.sock'),
  tlsCa: z.string().min(1).optional(),
  tlsCert: z.string().min(1).optional(),
  tlsKey: z.string().min(1).optional(),
  rules: z.string().min(1).optional(),
  hostName: z.string().min(1).optional(),
  auditLog: z.string().min(1).optional(),
  metrics: hostPort.optional(),
  maxBody: z.coerce.number().int().min(1024).max(1 << 30).default(16 * 1024 * 1024),
  shutdownTimeout: z.coerce.number().min(0).max(3600).default(10),
  console: z.url({ protocol: /^https$/, error: 'must be an https:// URL, e.g. https://console:8083' }).optional(),
  joinToken: z.string().min(10, 'is too short to be a join token').max(200).optional(),
  consoleCa: z.string().min(1).optional(),
  consolePin: z
    .string()
    .refine((p) => p.split(';').every((one) => PIN.test(one.trim())), 'must be sha256// followed by the base64 SHA-256 of the public key (several separated by ;)')
    .optional(),
  state: z.string().min(1).optional(),
  addresses: z.array(z.string().trim().min(1).max(253)).max(30).default([]),
  reEnroll: z.union([z.boolean(), z.enum(['true', 'false']).transform((v) => v === 'true')]).default(false),
  socketGroup: z.string().regex(/^([a-z_][a-z0-9_.-]{0,31}\$?|\d+)$/i, 'must be a group name or a numeric gid').optional(),
  secretsDir: z.string().regex(/^\/./, 'must be an absolute path').optional(),
});

type ParsedConfig = z.infer<typeof configSchema>;

interface CommonConfig {
  readonly listen: string;
  readonly docker: string;
  readonly metrics: string | undefined;
  readonly maxBody: number;
  readonly shutdownTimeout: number;
}

/** Rules and TLS material from files. */
export interface FileModeConfig extends CommonConfig {
  readonly mode: 'file';
  readonly tlsCa: string;
  readonly tlsCert: string;
  readonly tlsKey: string;
  readonly rules: string;
  readonly hostName: string;
  readonly auditLog: string;
}

/** Rules, certificates and listener from a Console (see console-mode.ts). */
export interface ConsoleModeConfig extends CommonConfig {
  readonly mode: 'console';
  readonly console: string;
  readonly joinToken: string | undefined;
  readonly consoleCa: string | undefined;
  readonly consolePin: string | undefined;
  readonly state: string;
  readonly addresses: readonly string[];
  readonly reEnroll: boolean;
  /** As given; undefined → the enrolled name, or this machine's hostname at enrolment. */
  readonly hostName: string | undefined;
  /** A local copy of the audit, only when asked for. */
  readonly auditLog: string | undefined;
  readonly socketGroup: string | undefined;
  /** The in-memory base directory of file secrets. */
  readonly secretsDir: string;
}

export type DefenderConfig = FileModeConfig | ConsoleModeConfig;

const FLAG_TO_KEY: Record<string, keyof ParsedConfig> = {
  listen: 'listen', docker: 'docker', 'tls-ca': 'tlsCa', 'tls-cert': 'tlsCert', 'tls-key': 'tlsKey', rules: 'rules',
  'host-name': 'hostName', 'audit-log': 'auditLog', metrics: 'metrics', 'max-body': 'maxBody', 'shutdown-timeout': 'shutdownTimeout',
  console: 'console', 'join-token': 'joinToken', 'console-ca': 'consoleCa', 'console-pin': 'consolePin', state: 'state', address: 'addresses',
  're-enroll': 'reEnroll', 'socket-group': 'socketGroup', 'secrets-dir': 'secretsDir',
};
const MULTIPLE_FLAGS = new Set(['address']);
const BOOLEAN_FLAGS = new Set(['re-enroll']);
const FILE_MODE_KEYS = ['tlsCa', 'tlsCert', 'tlsKey', 'rules'] as const;
const CONSOLE_MODE_KEYS = ['joinToken', 'consoleCa', 'consolePin', 'state', 'addresses', 'reEnroll', 'socketGroup', 'secretsDir'] as const;
const REQUIRED_IN_FILE_MODE: Record<(typeof FILE_MODE_KEYS)[number], string> = {
  tlsCa: 'is required (the CA that signs client certificates)',
  tlsCert: "is required (the Defender's server certificate)",
  tlsKey: "is required (the server certificate's key)",
  rules: 'is required (the access rules file)',
};

function keyToFlag(key: string): string {
  return Object.entries(FLAG_TO_KEY).find(([, k]) => k === key)?.[0] ?? key;
}

/** Where a console-mode Defender keeps its state unless told: a system path as root, the home directory otherwise. */
export function defaultStateDir(): string {
  return process.getuid?.() === 0 ? '/var/lib/drawbridge/defender' : join(homedir(), '.drawbridge', 'defender');
}

/**
 * One Defender's file secrets directory unless told: on /dev/shm (in memory), named after its state directory, so
 * two Defenders on one host never sweep each other's containers' secrets.
 */
export function defaultSecretsDir(state: string): string {
  return join('/dev/shm', `drawbridge-secrets-${createHash('sha256').update(resolve(state)).digest('hex').slice(0, 12)}`);
}

function usageError(lines: readonly string[]): Error {
  return defenderErrors.config(`${lines.join('\n')}\nRun 'drawbridge defender --help' for the options.`);
}

/** Parses argv (after `defender`). Returns null when --help was asked. Throws a `config` error naming the option. */
export function parseDefenderConfig(argv: readonly string[], readFile = (p: string) => readFileSync(p, 'utf8')): DefenderConfig | null {
  let parsed;
  try {
    parsed = parseArgs({
      args: [...argv],
      strict: true,
      allowPositionals: false,
      options: {
        ...Object.fromEntries(
          Object.keys(FLAG_TO_KEY).map((f) => [f, BOOLEAN_FLAGS.has(f) ? { type: 'boolean' as const } : { type: 'string' as const, multiple: MULTIPLE_FLAGS.has(f) }]),
        ),
        config: { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
    });
  } catch (e) {
    throw usageError([(e as Error).message]);
  }
  const values = parsed.values as Record<string, string | string[] | boolean | undefined>;
  if (values.help) return null;

  let fromFile: Record<string, unknown> = {};
  if (typeof values.config === 'string') {
    let text: string;
    try {
      text = readFile(values.config);
    } catch (e) {
      throw defenderErrors.config(`cannot read the config file ${values.config}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
    }
    let doc: unknown;
    try {
      doc = parseYaml(text) ?? {};
    } catch (e) {
      throw defenderErrors.config(`the config file ${values.config} is not valid YAML: ${(e as Error).message.split('\n')[0]}`);
    }
    if (typeof doc !== 'object' || Array.isArray(doc)) throw defenderErrors.config(`the config file ${values.config} must be a YAML mapping of options`);
    fromFile = doc as Record<string, unknown>;
  }
  const fromFlags = Object.fromEntries(
    Object.entries(FLAG_TO_KEY).filter(([flag]) => values[flag] !== undefined).map(([flag, key]) => [key, values[flag]]),
  );
  const result = configSchema.safeParse({ ...fromFile, ...fromFlags });
  if (!result.success) {
    throw usageError(
      result.error.issues.map((i) => {
        if (i.code === 'unrecognized_keys') return `config file ${values.config}: unknown option(s) ${i.keys.join(', ')}`;
        const key = String(i.path[0]);
        return `--${keyToFlag(key)} (${key}): ${i.message}`;
      }),
    );
  }
  return toModeConfig(result.data, { ...fromFile, ...fromFlags });
}

function toModeConfig(c: ParsedConfig, given: Record<string, unknown>): DefenderConfig {
  const common: CommonConfig = { listen: c.listen, docker: c.docker, metrics: c.metrics, maxBody: c.maxBody, shutdownTimeout: c.shutdownTimeout };
  const isGiven = (key: string): boolean => given[key] !== undefined;
  if (c.console !== undefined) {
    const mixed = FILE_MODE_KEYS.filter(isGiven);
    if (mixed.length) {
      throw usageError([
        `--console cannot be combined with ${mixed.map((k) => `--${keyToFlag(k)}`).join(', ')}: a Defender takes its rules and certificates either from files or from a Console, never both`,
      ]);
    }
    if (c.reEnroll && c.joinToken === undefined) throw usageError(['--re-enroll needs --join-token (a new join token from the Console)']);
    const state = c.state ?? defaultStateDir();
    return {
      mode: 'console', ...common, console: c.console.replace(/\/+$/, ''), joinToken: c.joinToken, consoleCa: c.consoleCa, consolePin: c.consolePin,
      state, addresses: c.addresses, reEnroll: c.reEnroll, hostName: c.hostName, auditLog: c.auditLog, socketGroup: c.socketGroup,
      secretsDir: c.secretsDir ?? defaultSecretsDir(state),
    };
  }
  const consoleOnly = CONSOLE_MODE_KEYS.filter(isGiven);
  if (consoleOnly.length) throw usageError([`${consoleOnly.map((k) => `--${keyToFlag(k)}`).join(', ')} only work(s) with --console URL`]);
  const missing = FILE_MODE_KEYS.filter((k) => c[k] === undefined);
  if (missing.length) throw usageError(missing.map((k) => `--${keyToFlag(k)} (${k}): ${REQUIRED_IN_FILE_MODE[k]}`));
  return { mode: 'file', ...common, tlsCa: c.tlsCa!, tlsCert: c.tlsCert!, tlsKey: c.tlsKey!, rules: c.rules!, hostName: c.hostName ?? hostname(), auditLog: c.auditLog ?? '-' };
}

/** HOST:PORT → listen options (IPv6 in brackets). */
export function splitHostPort(addr: string): { host: string; port: number } {
  const i = addr.lastIndexOf(':');
  const host = addr.slice(0, i).replace(/^\[(.*)\]$/, '$1');
  return { host: host || '0.0.0.0', port: Number(addr.slice(i + 1)) };
}
