/**
 * `drawbridge defender` settings from flags and an optional YAML config file (same keys, camelCase).
 *
 * - Flags win over the file; the file wins over defaults.
 * - Unknown flags and unknown file keys are errors (a typo must not drop a security setting).
 * - TLS material and a rules file are required: there is no insecure or allow-all mode.
 */
import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { parseArgs } from 'node:util';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { defenderErrors } from './errors.js';

export const DEFENDER_USAGE = `Usage: drawbridge defender [options]

Puts role-based access control in front of the Docker Engine: an mTLS listener that authorises every
Engine API request by the rules file and forwards what is allowed to dockerd.

Options (or the same keys in --config FILE, camelCase: listen, docker, tlsCa, …):
  --listen ADDR          where to listen: HOST:PORT (default 0.0.0.0:9998)
  --docker URL           dockerd: unix:///path or tcp://host:port (default unix:///var/run/docker.sock)
  --tls-ca FILE          CA that client certificates must chain to (required)
  --tls-cert FILE        the Defender's server certificate (required)
  --tls-key FILE         its private key (required)
  --rules FILE           access rules (YAML), reloaded when it changes (required)
  --host-name NAME       the name rules' "hosts" match (default: this machine's hostname)
  --audit-log FILE|-     JSON lines, one per decision (default -: standard output)
  --metrics ADDR         serve Prometheus metrics on HOST:PORT/metrics (default: off)
  --max-body BYTES       largest request body inspected in memory (default 16777216)
  --shutdown-timeout S   how long running streams may finish on SIGTERM (default 10)
  --config FILE          read options from a YAML file
  -h, --help             show this help
`;

const hostPort = z
  .string()
  .regex(/^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]*):\d{1,5}$/, 'must be HOST:PORT, e.g. 0.0.0.0:9998');

const configSchema = z.strictObject({
  listen: hostPort.default('0.0.0.0:9998'),
  docker: z.string().regex(/^(unix:\/\/\/.+|tcp:\/\/[^/]+:\d+\/?)$/, 'must be unix:///path/to/docker.sock or tcp://host:port').default('unix:///var/run/docker.sock'),
  tlsCa: z.string({ error: 'is required (the CA that signs client certificates)' }).min(1),
  tlsCert: z.string({ error: 'is required (the Defender\'s server certificate)' }).min(1),
  tlsKey: z.string({ error: 'is required (the server certificate\'s key)' }).min(1),
  rules: z.string({ error: 'is required (the access rules file)' }).min(1),
  hostName: z.string().min(1).default(() => hostname()),
  auditLog: z.string().min(1).default('-'),
  metrics: hostPort.optional(),
  maxBody: z.coerce.number().int().min(1024).max(1 << 30).default(16 * 1024 * 1024),
  shutdownTimeout: z.coerce.number().min(0).max(3600).default(10),
});

export type DefenderConfig = z.infer<typeof configSchema>;

const FLAG_TO_KEY: Record<string, keyof DefenderConfig> = {
  listen: 'listen', docker: 'docker', 'tls-ca': 'tlsCa', 'tls-cert': 'tlsCert', 'tls-key': 'tlsKey', rules: 'rules',
  'host-name': 'hostName', 'audit-log': 'auditLog', metrics: 'metrics', 'max-body': 'maxBody', 'shutdown-timeout': 'shutdownTimeout',
};

function keyToFlag(key: string): string {
  return Object.entries(FLAG_TO_KEY).find(([, k]) => k === key)?.[0] ?? key;
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
        ...Object.fromEntries(Object.keys(FLAG_TO_KEY).map((f) => [f, { type: 'string' as const }])),
        config: { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
    });
  } catch (e) {
    throw defenderErrors.config(`${(e as Error).message}\nRun 'drawbridge defender --help' for the options.`);
  }
  const values = parsed.values as Record<string, string | boolean | undefined>;
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
    const lines = result.error.issues.map((i) => {
      if (i.code === 'unrecognized_keys') return `config file ${values.config}: unknown option(s) ${i.keys.join(', ')}`;
      const key = String(i.path[0]);
      return `--${keyToFlag(key)} (${key}): ${i.message}`;
    });
    throw defenderErrors.config(`${lines.join('\n')}\nRun 'drawbridge defender --help' for the options.`);
  }
  return result.data;
}

/** HOST:PORT → listen options (IPv6 in brackets). */
export function splitHostPort(addr: string): { host: string; port: number } {
  const i = addr.lastIndexOf(':');
  const host = addr.slice(0, i).replace(/^\[(.*)\]$/, '$1');
  return { host: host || '0.0.0.0', port: Number(addr.slice(i + 1)) };
}
