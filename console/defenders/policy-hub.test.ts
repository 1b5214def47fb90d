// The push hub on a real (in-memory) SQLite database with the real migrations, serving real HTTP streams on
// loopback: fan-out, coalescing, per-Defender listeners, ending streams of revoked or deleted Defenders, and a
// slow Defender that must not make the Console buffer a backlog.
import Database from 'better-sqlite3';
import { createServer, get, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { policyStreamLine, type PolicyStreamLine } from '../../shared/wire/defender-console.js';
import type { ConsoleContext } from '../context.js';
import { migrate, nowIso, type Db } from '../db/database.js';
import { masterKeyFromBytes } from '../crypto/master-key.js';
import { PolicyClock } from '../policy/policy-clock.js';
import { SecretsService } from '../secrets/secrets-service.js';
import { PolicyHub } from './policy-hub.js';

let db: Db;
let clock: PolicyClock;
let hub: PolicyHub;
let server: Server;
let port: number;
const open: IncomingMessage[] = [];

const TCP = { type: 'tcp', address: '0.0.0.0:9998' };
const UNIX = { type: 'unix', path: '/run/drawbridge.sock' };

function addDefender(host: string, listener: object, serial: string): void {
  db.prepare('INSERT INTO defenders (host_name, listener_json, cert_serial, enrolled_at) VALUES (?, ?, ?, ?)').run(host, JSON.stringify(listener), serial, nowIso());
  db.prepare("INSERT INTO certificates (serial, kind, subject_name, not_before, not_after, created_at) VALUES (?, 'defender', ?, ?, ?, ?)")
    .run(serial, host, nowIso(), new Date(Date.now() + 3600_000).toISOString(), nowIso());
}

/** Adds `n` rules and bumps the version, as the rule store does. */
function addRules(n: number, prefix = 'r'): number {
  return db.transaction(() => {
    const base = (db.prepare('SELECT COUNT(*) AS c FROM rules').get() as { c: number }).c;
    const insert = db.prepare("INSERT INTO rules (position, name, effect, users_json, groups_json, hosts_json, actions_json) VALUES (?, ?, 'allow', '[\"*\"]', ?, '[\"dev-*\"]', '[\"container_list\"]')");
    for (let i = 0; i < n; i++) insert.run(base + i, `${prefix}-${base + i}`, JSON.stringify([`group-with-a-long-name-${base + i}`]));
    return clock.bump('rules');
  })();
}

interface Client {
  readonly lines: PolicyStreamLine[];
  readonly res: IncomingMessage;
  ended: boolean;
}

function connect(host: string, serial: string, since: number): Promise<Client> {
  return new Promise((resolve, reject) => {
    get({ port, path: `/?since=${since}`, headers: { 'x-host': host, 'x-serial': serial } }, (res) => {
      open.push(res);
      const client: Client = { lines: [], res, ended: false };
      let buffer = '';
      res.setEncoding('utf8').on('data', (chunk: string) => {
        buffer += chunk;
        for (let i = buffer.indexOf('\n'); i >= 0; i = buffer.indexOf('\n')) {
          client.lines.push(policyStreamLine.parse(JSON.parse(buffer.slice(0, i))));
          buffer = buffer.slice(i + 1);
        }
      });
      res.on('close', () => (client.ended = true));
      resolve(client);
    }).on('error', reject);
  });
}

const versions = (c: Client): number[] => c.lines.flatMap((l) => (l.type === 'snapshot' ? [l.snapshot.version] : []));
const last = (c: Client) => {
  const l = c.lines.at(-1);
  if (l?.type !== 'snapshot') throw new Error('the last line is not a snapshot');
  return l.snapshot;
};

beforeEach(async () => {
  db = new Database(':memory:');
  migrate(db);
  clock = new PolicyClock(db);
  const log = { info() {}, error() {} };
  const secrets = new SecretsService(db, masterKeyFromBytes(Buffer.alloc(32, 7)), clock, log);
  const ctx = { db, policy: clock, secrets, log } as unknown as ConsoleContext;
  hub = new PolicyHub(ctx, 60_000);
  addDefender('dev-a', TCP, '0a01');
  addDefender('dev-b', TCP, '0b01');
  addDefender('dev-c', UNIX, '0c01');
  server = createServer((req, res) => {
    const since = Number(new URL(req.url!, 'http://x').searchParams.get('since'));
    hub.open({ hostName: String(req.headers['x-host']), serial: String(req.headers['x-serial']) }, since, req, res);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  port = (server.address() as AddressInfo).port;
});

afterEach(async () => {
  for (const res of open.splice(0)) res.destroy();
  server.closeAllConnections();
  await new Promise((r) => server.close(r));
  db.close();
});

describe('policy hub', () => {
  it('sends a snapshot at once when behind, each Defender its own listener, then every change to everyone', async () => {
    const v1 = addRules(2);
    const [a, b, c] = await Promise.all([connect('dev-a', '0a01', 0), connect('dev-b', '0b01', 0), connect('dev-c', '0c01', 0)]);
    await vi.waitFor(() => expect([a, b, c].map((x) => x.lines.length)).toEqual([1, 1, 1]));
    expect([a, b, c].map((x) => last(x).version)).toEqual([v1, v1, v1]);
    expect([a, b, c].map((x) => last(x).listener)).toEqual([TCP, TCP, UNIX]);
    expect(last(a).rules.map((r) => r.name)).toEqual(['r-0', 'r-1']);
    expect(hub.isConnected('DEV-A')).toBe(true);

    const current = await connect('dev-a', '0a01', v1); // a second stream, already current: nothing yet
    const v2 = addRules(1);
    await vi.waitFor(() => expect([a, b, c, current].map(versions)).toEqual([[v1, v2], [v1, v2], [v1, v2], [v2]]));
    expect(last(c).rules.map((r) => r.name)).toEqual(['r-0', 'r-1', 'r-2']);
  });

  it('coalesces a burst of changes into one snapshot of the newest version', async () => {
    const a = await connect('dev-a', '0a01', 0);
    await vi.waitFor(() => expect(a.lines).toHaveLength(1));
    addRules(1);
    addRules(1);
    const v = addRules(1);
    await vi.waitFor(() => expect(versions(a).at(-1)).toBe(v));
    expect(versions(a)).toHaveLength(2);
  });

  it('ends the stream of a revoked certificate or a deleted Defender, and keeps the others', async () => {
    const [a, b, c] = await Promise.all([connect('dev-a', '0a01', 0), connect('dev-b', '0b01', 0), connect('dev-c', '0c01', 0)]);
    await vi.waitFor(() => expect([a, b, c].map((x) => x.lines.length)).toEqual([1, 1, 1]));
    const v = db.transaction(() => {
      db.prepare("UPDATE certificates SET revoked_at = ? WHERE serial = '0a01'").run(nowIso());
      db.prepare("DELETE FROM defenders WHERE host_name = 'dev-b'").run();
      return clock.bump('revocation');
    })();
    await vi.waitFor(() => expect([a.ended, b.ended]).toEqual([true, true]));
    await vi.waitFor(() => expect(versions(c).at(-1)).toBe(v));
    expect(last(c).revokedSerials).toEqual(['0a01']);
    expect(c.ended).toBe(false);
    await vi.waitFor(() => expect(hub.streamCount).toBe(1));
    expect(hub.isConnected('dev-a')).toBe(false);
  });

  it('gives a slow Defender only the newest snapshot once it drains, never a backlog', async () => {
    addRules(1500, 'big');
    const slow = await connect('dev-a', '0a01', 0);
    const fast = await connect('dev-b', '0b01', 0);
    await vi.waitFor(() => expect(slow.lines).toHaveLength(1));
    const snapshotBytes = JSON.stringify(slow.lines[0]).length;
    expect(snapshotBytes).toBeGreaterThan(200_000);
    slow.res.pause();
    let v = 0;
    for (let i = 0; i < 40; i++) {
      v = addRules(1, `more-${i}`);
      await new Promise((r) => setImmediate(r));
      await vi.waitFor(() => expect(versions(fast).at(-1)).toBe(v), { interval: 5 });
      // Everything unsent sits in socket buffers or in at most one snapshot per slow stream.
      expect(hub.bufferedBytes).toBeLessThanOrEqual(2 * (snapshotBytes + 100_000));
    }
    slow.res.resume();
    await vi.waitFor(() => expect(versions(slow).at(-1)).toBe(v), { timeout: 10_000 });
    expect(versions(slow).length).toBeLessThan(41); // some versions were skipped, not queued
    expect(last(slow).rules).toHaveLength(1540);
  }, 30_000);
});
