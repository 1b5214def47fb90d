// Enrolment on a real (in-memory) SQLite database with the real migrations and the real Console CA: two enrolments
// of one new name interleaved at the point where they race (one issuing its certificates while the other commits),
// held there by a gate around the CA's issuing, so the order is the same on every run.
import 'reflect-metadata'; // @peculiar/x509 (tsyringe) needs it loaded first
import { randomBytes, webcrypto } from 'node:crypto';
import Database from 'better-sqlite3';
import * as x509 from '@peculiar/x509';
import { beforeEach, describe, expect, it } from 'vitest';
import { EC_KEY_ALGORITHM, SIGNING_ALGORITHM } from '../../shared/identity/certificate-profiles.js';
import { ConsoleCa } from '../ca/console-ca.js';
import type { ConsoleContext } from '../context.js';
import { masterKeyFromBytes } from '../crypto/master-key.js';
import { migrate, type Db } from '../db/database.js';
import { PolicyClock } from '../policy/policy-clock.js';
import { DefenderStore } from './defender-store.js';
import { enrollDefender, type EnrollInput } from './enroll-defender.js';
import { JoinTokenStore } from './join-tokens.js';

x509.cryptoProvider.set(webcrypto);

async function csr(): Promise<string> {
  const keys = (await webcrypto.subtle.generateKey(EC_KEY_ALGORITHM, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
  return (await x509.Pkcs10CertificateRequestGenerator.create({ name: 'CN=ignored', keys: keys as never, signingAlgorithm: SIGNING_ALGORITHM })).toString('pem');
}

let db: Db;
let ca: ConsoleCa;
let tokens: JoinTokenStore;
let defenders: DefenderStore;
/** Resolved by the test: until then, issuing for a CSR in `held` waits. */
let release: () => void;
let held: Set<string>;
let reachedIssue: Promise<void>;

function context(): ConsoleContext {
  let reached!: () => void;
  reachedIssue = new Promise((r) => (reached = r));
  const gate = new Promise<void>((r) => (release = r));
  const gatedCa = {
    certPem: ca.certPem,
    issueFromCsr: async (...args: Parameters<ConsoleCa['issueFromCsr']>) => {
      if (held.has(args[0])) {
        reached();
        await gate;
      }
      return ca.issueFromCsr(...args);
    },
  } as unknown as ConsoleCa;
  return { db, ca: gatedCa, config: { defenderCertLifetime: 3600 }, log: { info: () => {}, error: () => {} } } as unknown as ConsoleContext;
}

async function input(joinToken: string, hostName: string): Promise<EnrollInput> {
  return { joinToken, hostName, addresses: [], version: 'test', serverCsr: await csr(), clientCsr: await csr(), listener: { type: 'tcp', address: '0.0.0.0:9998' } };
}

beforeEach(async () => {
  db = new Database(':memory:');
  migrate(db);
  ca = await ConsoleCa.open(db, masterKeyFromBytes(randomBytes(32)));
  tokens = new JoinTokenStore(db);
  defenders = new DefenderStore(db, new PolicyClock(db));
  held = new Set();
});

describe('a token for any name racing a token for that name', () => {
  it('cannot register the name when the bound enrolment commits while it issues (409), and the bound Defender keeps its certificate', async () => {
    const ctx = context();
    const anyName = tokens.create('admin', 600, false).token;
    const forName = tokens.create('admin', 600, true, 'dev-race').token;
    const unbound = await input(anyName, 'dev-race');
    held.add(unbound.serverCsr);

    // The unbound enrolment passes its first check (no Defender named dev-race yet) and waits while issuing.
    const late = enrollDefender(ctx, { tokens, defenders }, unbound, null);
    await reachedIssue;
    const bound = await enrollDefender(ctx, { tokens, defenders }, await input(forName, 'dev-race'), null);
    release();

    await expect(late).rejects.toMatchObject({ status: 409 });
    const clientSerial = new x509.X509Certificate(bound.clientCert).serialNumber.toLowerCase();
    expect(defenders.get('dev-race')?.clientCertSerial?.toLowerCase()).toBe(clientSerial);
    const row = db.prepare('SELECT revoked_at FROM certificates WHERE lower(serial) = ?').get(clientSerial) as { revoked_at: string | null };
    expect(row.revoked_at).toBeNull();
    // What the refused enrolment issued is revoked, and its token use given back.
    const unrevoked = db.prepare("SELECT COUNT(*) AS n FROM certificates WHERE kind IN ('defender', 'defender-server') AND revoked_at IS NULL").get() as { n: number };
    expect(unrevoked.n).toBe(2);
  });
});
