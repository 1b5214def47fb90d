/**
 * Public entry of the Console: `drawbridge console [options]`.
 *
 * First start: creates the data directory (0700), the database, the master key file (unless given), the CA, the
 * Console's TLS certificate, and the first admin `admin` (password from --admin-password/env, or a one-time
 * password printed once). Later starts reuse all of it.
 */
import { createHash, createPublicKey, randomBytes, X509Certificate } from 'node:crypto';
import { hostname } from 'node:os';
import { DrawbridgeError } from '../shared/errors/drawbridge-error.js';
import { carriesConsoleMark } from '../shared/identity/certificate-identity.js';
import { ROUTE_GROUPS } from './api/routes.js';
import { LoginThrottle } from './auth/login-throttle.js';
import { SessionStore } from './auth/session-store.js';
import { UserStore } from './auth/user-store.js';
import { ConsoleCa } from './ca/console-ca.js';
import { CONSOLE_USAGE, parseConsoleConfig, type ConsoleConfig } from './config.js';
import type { ConsoleContext, ConsoleLog } from './context.js';
import { loadMasterKey, readKeyFile, type MasterKey } from './crypto/master-key.js';
import { logFields } from '../shared/log/log-fields.js';
import { ConsoleAuditStore } from './audit/console-audit.js';
import { resealAll } from './crypto/reseal.js';
import { nowIso, openDatabase, type Db } from './db/database.js';
import { PolicyClock } from './policy/policy-clock.js';
import { SecretsService } from './secrets/secrets-service.js';
import { buildConsole, type ConsoleServer } from './server.js';

export { parseConsoleConfig, type ConsoleConfig } from './config.js';
export * as secretStores from './secrets/stores/index.js';

const TLS_LIFETIME_MS = 365 * 24 * 3600_000;

function stderrLog(): ConsoleLog {
  const line = (level: string, m: string, f: Record<string, unknown> = {}): void => {
    process.stderr.write(`${new Date().toISOString()} ${level} drawbridge-console: ${m}${logFields(f)}\n`);
  };
  return { info: (m, f) => line('INFO', m, f), error: (m, f) => line('ERROR', m, f) };
}

function tlsNames(config: ConsoleConfig): { dnsNames: string[]; ips: string[] } {
  const names = new Set(['localhost', hostname(), new URL(config.publicUrl).hostname, ...config.tlsNames.split(',').map((s) => s.trim()).filter(Boolean)]);
  const ips = new Set(['127.0.0.1']);
  const dnsNames: string[] = [];
  for (const n of names) (/^[\d.]+$|:/.test(n) ? ips.add(n.replace(/^\[|\]$/g, '')) : dnsNames.push(n));
  return { dnsNames, ips: [...ips] };
}

/** The Console's TLS certificate: reused while valid for the same names, otherwise issued anew (key sealed). */
async function consoleTls(db: Db, masterKey: MasterKey, ca: ConsoleCa, config: ConsoleConfig): Promise<{ cert: string; key: string }> {
  const names = tlsNames(config);
  const wanted = JSON.stringify(names);
  const get = (k: string): string | undefined => (db.prepare('SELECT value FROM meta WHERE key = ?').get(k) as { value: string } | undefined)?.value;
  const cert = get('tls.cert');
  const keySealed = get('tls.key');
  const expires = get('tls.not_after');
  // One without the Console's mark (made by an older version) is replaced: Defenders and the companion require it.
  const organizations = cert === undefined ? [] : new X509Certificate(cert).subject.split('\n').filter((a) => a.startsWith('O=')).map((a) => a.slice(2));
  const marked = carriesConsoleMark(organizations);
  if (cert && marked && keySealed && get('tls.names') === wanted && expires && Date.parse(expires) > Date.now() + 30 * 24 * 3600_000) {
    return { cert, key: masterKey.open(keySealed, 'tls.key').toString('utf8') };
  }
  const issued = await ca.issueWithNewKey({ kind: 'console-server', ...names }, TLS_LIFETIME_MS, 'console');
  const put = db.prepare('INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value');
  db.transaction(() => {
    put.run('tls.cert', issued.certPem);
    put.run('tls.key', masterKey.seal(issued.keyPem, 'tls.key'));
    put.run('tls.names', wanted);
    put.run('tls.not_after', issued.notAfter);
  })();
  return { cert: issued.certPem, key: issued.keyPem };
}

export interface RunningConsole {
  readonly ctx: ConsoleContext;
  readonly console: ConsoleServer;
  readonly port: number;
  /** The one-time admin password when this start created the admin without one given; null otherwise. */
  readonly bootstrapPassword: string | null;
  stop(): Promise<void>;
}

export async function startConsole(config: ConsoleConfig, log: ConsoleLog = stderrLog()): Promise<RunningConsole> {
  const db = openDatabase(config.data);
  // A new key only for a new data directory: existing encrypted data with a missing key file must not get a
  // fresh (useless) key written next to it.
  const hasSealedData = db.prepare('SELECT 1 FROM ca WHERE id = 1').get() !== undefined;
  const previous = [
    ...(config.previousMasterKeyEnv ? [Buffer.from(config.previousMasterKeyEnv, 'base64')] : []),
    ...(config.previousMasterKeyFile ? [readKeyFile(config.previousMasterKeyFile)] : []),
  ];
  const { key: masterKey, created } = loadMasterKey({ env: config.masterKeyEnv, file: config.masterKeyFile, create: !hasSealedData || previous.length > 0, previous });
  if (created) log.info('created the master key file; back it up: without it the encrypted data cannot be read', { file: config.masterKeyFile });
  const resealed = resealAll(db, masterKey);
  if (resealed > 0) log.info('master key rotated: every encrypted value is now sealed with the current key; the previous key is no longer needed', { values: resealed, key: masterKey.id });
  else if (previous.length > 0) log.info('a previous master key was given, but nothing is sealed with it any more; it can be removed from the options');
  const ca = await ConsoleCa.open(db, masterKey);
  const users = new UserStore(db);
  const sessions = new SessionStore(db, config.sessionTtl);
  let bootstrapPassword: string | null = null;
  if (users.count() === 0) {
    const password = config.adminPassword ?? (bootstrapPassword = randomBytes(18).toString('base64url'));
    await users.create({ name: 'admin', password, role: 'admin', groups: [] });
    db.prepare('INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)').run('created_at', nowIso());
  }
  const tls = await consoleTls(db, masterKey, ca, config);
  const spki = createPublicKey(tls.key).export({ type: 'spki', format: 'der' });
  const tlsPin = `sha256//${createHash('sha256').update(spki).digest('base64')}`;
  const policy = new PolicyClock(db);
  const secrets = new SecretsService(db, masterKey, policy, log);
  const ctx: ConsoleContext = { config, db, masterKey, ca, users, sessions, logins: new LoginThrottle(), consoleAudit: new ConsoleAuditStore(db), policy, secrets, log, tlsPin };
  const server = buildConsole(ctx, tls, ROUTE_GROUPS);
  const i = config.listen.lastIndexOf(':');
  const address = await server.listen(Number(config.listen.slice(i + 1)), config.listen.slice(0, i).replace(/^\[|\]$/g, '') || undefined);
  log.info('listening', { listen: `${address.address}:${address.port}`, url: config.publicUrl, data: config.data });
  secrets.sync.start(config.secretSyncInterval * 1000);
  return {
    ctx,
    console: server,
    port: address.port,
    bootstrapPassword,
    async stop() {
      secrets.sync.stop();
      await server.close();
      await secrets.sync.idle();
      db.close();
    },
  };
}

/** `drawbridge console …` */
export async function runConsole(argv: readonly string[]): Promise<number> {
  let running: RunningConsole;
  try {
    const config = parseConsoleConfig(argv);
    if (config === null) {
      process.stdout.write(CONSOLE_USAGE);
      return 0;
    }
    running = await startConsole(config);
  } catch (e) {
    if (e instanceof DrawbridgeError) {
      process.stderr.write(`drawbridge console: ${e.message}\n`);
      return 2;
    }
    throw e;
  }
  if (running.bootstrapPassword) {
    process.stderr.write(`\nFirst start: log in as 'admin' with the one-time password ${running.bootstrapPassword}\n(it is not shown again; change it with PATCH /api/v1/users/admin)\n\n`);
  }
  return new Promise((resolve) => {
    const shutdown = (): void => void running.stop().then(() => resolve(0), () => resolve(1));
    process.once('SIGTERM', shutdown);
    process.once('SIGINT', shutdown);
  });
}
