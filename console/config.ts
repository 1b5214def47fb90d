/**
 * `drawbridge console` settings from flags, environment and an optional YAML file (same keys, camelCase).
 * Flags win over the file. Unknown options are errors.
 */
import { readFileSync } from 'node:fs';
import { homedir, hostname } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { consoleErrors } from './errors.js';

export const CONSOLE_USAGE = `Usage: drawbridge console [options]

Runs the Drawbridge Console: users, the certificate authority, access rules, Defender enrolment and policy push.

Options (or the same keys in --config FILE, camelCase):
  --listen ADDR             HOST:PORT for the HTTPS API (default 0.0.0.0:8083)
  --data DIR                data directory (default ~/.drawbridge/console)
  --master-key-file FILE    the key that encrypts sensitive data at rest, mode 0600, created on first start
                            (default ~/.config/drawbridge/console-master.key; or DRAWBRIDGE_MASTER_KEY=base64)
  --previous-master-key-file FILE
                            the master key before a rotation: values sealed with it are sealed again with
                            the current key at start (or DRAWBRIDGE_PREVIOUS_MASTER_KEY=base64)
  --admin-password PW       password of the first admin 'admin' (or DRAWBRIDGE_ADMIN_PASSWORD; otherwise a
                            one-time password is printed on first start)
  --public-url URL          how users and Defenders reach this Console (default https://<hostname>:<port>)
  --tls-names NAMES         extra DNS names/IPs for the Console's certificate, comma-separated
  --session-ttl SECONDS     API session lifetime (default 3600)
  --cert-max-lifetime SECS  longest user certificate lifetime (default 86400, at least 10)
  --defender-cert-lifetime SECS
                            lifetime of the certificates enrolled Defenders get (default 31536000, a year;
                            at least 10); a Defender renews its own when a third of it is left
  --install-token-ttl SECS  how long a certificate install command stays usable (default 600)
  --secret-sync-interval S  re-fetch every secret from its store this often (default 3600; 0 turns it off;
                            POST /api/v1/secrets/refresh fetches at once)
  --config FILE             read options from a YAML file
  -h, --help                show this help
`;

const hostPort = z.string().regex(/^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]*):\d{1,5}$/, 'must be HOST:PORT, e.g. 0.0.0.0:8083');

const schema = z.strictObject({
  listen: hostPort.default('0.0.0.0:8083'),
  data: z.string().min(1).default(() => join(homedir(), '.drawbridge', 'console')),
  masterKeyFile: z.string().min(1).default(() => join(process.env.XDG_CONFIG_HOME ?? join(homedir(), '.config'), 'drawbridge', 'console-master.key')),
  previousMasterKeyFile: z.string().min(1).optional(),
  adminPassword: z.string().min(12, 'must be at least 12 characters').optional(),
  publicUrl: z.url({ protocol: /^https$/, error: 'must be an https:// URL' }).optional(),
  tlsNames: z.string().default(''),
  sessionTtl: z.coerce.number().int().min(60).max(7 * 86400).default(3600),
  // Seconds are allowed so renewal can be exercised end to end (the companion renews at about 2/3 of the lifetime).
  certMaxLifetime: z.coerce.number().int().min(10).max(366 * 86400).default(86400),
  // Seconds again so that Defender renewal can be exercised end to end.
  defenderCertLifetime: z.coerce.number().int().min(10).max(10 * 366 * 86400).default(365 * 86400),
  installTokenTtl: z.coerce.number().int().min(1).max(86400).default(600),
  secretSyncInterval: z.coerce.number().int().min(0).max(30 * 86400).default(3600),
});

export type ConsoleConfig = z.infer<typeof schema> & { readonly publicUrl: string; readonly masterKeyEnv: string | undefined; readonly previousMasterKeyEnv: string | undefined };

const FLAGS: Record<string, keyof z.infer<typeof schema>> = {
  listen: 'listen', data: 'data', 'master-key-file': 'masterKeyFile', 'previous-master-key-file': 'previousMasterKeyFile', 'admin-password': 'adminPassword', 'public-url': 'publicUrl',
  'tls-names': 'tlsNames', 'session-ttl': 'sessionTtl', 'cert-max-lifetime': 'certMaxLifetime', 'defender-cert-lifetime': 'defenderCertLifetime', 'install-token-ttl': 'installTokenTtl',
  'secret-sync-interval': 'secretSyncInterval',
};

export function parseConsoleConfig(argv: readonly string[], env: NodeJS.ProcessEnv = process.env): ConsoleConfig | null {
  let values: Record<string, string | boolean | undefined>;
  try {
    values = parseArgs({
      args: [...argv],
      strict: true,
      options: { ...Object.fromEntries(Object.keys(FLAGS).map((f) => [f, { type: 'string' as const }])), config: { type: 'string' }, help: { type: 'boolean', short: 'h' } },
    }).values as Record<string, string | boolean | undefined>;
  } catch (e) {
    throw consoleErrors.config(`${(e as Error).message}\nRun 'drawbridge console --help' for the options.`);
  }
  if (values.help) return null;
  let fromFile: Record<string, unknown> = {};
  if (typeof values.config === 'string') {
    try {
      fromFile = (parseYaml(readFileSync(values.config, 'utf8')) ?? {}) as Record<string, unknown>;
    } catch (e) {
      throw consoleErrors.config(`cannot read the config file ${values.config}: ${(e as Error).message.split('\n')[0]}`);
    }
  }
  const fromFlags = Object.fromEntries(Object.entries(FLAGS).filter(([f]) => values[f] !== undefined).map(([f, k]) => [k, values[f]]));
  const fromEnv = env.DRAWBRIDGE_ADMIN_PASSWORD ? { adminPassword: env.DRAWBRIDGE_ADMIN_PASSWORD } : {};
  const result = schema.safeParse({ ...fromFile, ...fromEnv, ...fromFlags });
  if (!result.success) {
    const lines = result.error.issues.map((i) =>
      i.code === 'unrecognized_keys' ? `unknown option(s) ${i.keys.join(', ')}` : `--${Object.entries(FLAGS).find(([, k]) => k === i.path[0])?.[0] ?? String(i.path[0])}: ${i.message}`,
    );
    throw consoleErrors.config(`${lines.join('\n')}\nRun 'drawbridge console --help' for the options.`);
  }
  const port = Number(result.data.listen.slice(result.data.listen.lastIndexOf(':') + 1));
  return { ...result.data, publicUrl: result.data.publicUrl ?? `https://${hostname()}:${port}`, masterKeyEnv: env.DRAWBRIDGE_MASTER_KEY, previousMasterKeyEnv: env.DRAWBRIDGE_PREVIOUS_MASTER_KEY };
}
