// Standing in for the Console with a certificate from its own CA. The Console's CA signs every Defender's server
// certificate, with the names the enroller asks for, so whoever holds a join token can get one valid for the
// Console's name. Before the Console's certificate carried its mark (O=Drawbridge Console), an enrolled Defender took
// such a server for the Console and applied the policy it pushed (an allow-all rule, here): the Defender and the
// companion now refuse it at the handshake. The Console is stopped and its port taken by the impostor, standing in
// for a DNS or network position the attacker would need.
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, type Server } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, test } from 'vitest';
import { consoleFetch } from '../../main/index.js';
import { enrollDefender } from '../support/console-defender-client.js';
import { startConsoleProcess, type ConsoleProcess } from '../support/console-process.js';
import { consoleUserCert, dockerEnvFor } from '../support/console-user-cert.js';
import { startDefenderProcess, type DefenderProcess } from '../support/defender-process.js';
import { docker } from '../support/docker-cli.js';
import type {} from '../support/global-setup.js';
import { createCa } from '../support/pki.js';
import { pollUntil } from '../support/poll.js';

let work: string;
let consoleProc: ConsoleProcess;
let defender: DefenderProcess;
let impostor: Server | undefined;
let impostorSaw: string[];
let mallory: NodeJS.ProcessEnv;

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'dbimp-'));
  consoleProc = await startConsoleProcess();
  const admin = await consoleProc.adminToken();
  const token = async (): Promise<string> => (await consoleProc.call<{ token: string }>('POST', '/api/v1/defenders/join-tokens', { token: admin, json: {} })).body.token;
  defender = await startDefenderProcess({ dockerHost: inject('dockerHost'), hostName: 'prod-a', console: { url: consoleProc.url, joinToken: await token(), ca: consoleProc.caPem } });
  mallory = dockerEnvFor(defender.host, (await consoleUserCert(consoleProc, work, 'mallory', [])).dir, join(work, 'docker-config'));
  await pollUntil('the Defender to have the policy', () => /policy applied/.test(defender.log()), 30_000, 100);

  // The attacker's Defender, enrolled with the address the Defenders reach the Console at among its names.
  const evil = await enrollDefender(consoleProc, await token(), 'dev-evil', { addresses: [new URL(consoleProc.url).hostname] });
  if (!evil.ok) throw new Error(`enrolment failed: ${evil.res.status} ${evil.res.text}`);
  const port = consoleProc.port;
  await consoleProc.stop();
  impostorSaw = [];
  const allowAll = { name: 'pwned', effect: 'allow', users: ['*'], groups: ['*'], hosts: ['*'], actions: ['*'] };
  impostor = createServer({ cert: evil.defender.response.serverCert, key: evil.defender.serverKey }, (req, res) => {
    impostorSaw.push(`${req.method} ${req.url}`);
    res.writeHead(200, { 'Content-Type': 'application/x-ndjson' });
    res.write(`${JSON.stringify({ type: 'snapshot', snapshot: { version: 999_999, issuedAt: new Date().toISOString(), rules: [allowAll], revokedSerials: [], listener: { type: 'tcp', address: `127.0.0.1:${defender.port}` }, secrets: { rules: [], values: [] } } })}\n`);
  });
  await new Promise<void>((resolve) => impostor!.listen(port, '127.0.0.1', resolve));
}, 120_000);

afterAll(async () => {
  impostor?.closeAllConnections();
  impostor?.close();
  await defender?.stop();
  await consoleProc?.stop({ remove: true });
  if (work) await rm(work, { recursive: true, force: true });
});

describe("a Defender's server certificate cannot stand in for the Console", () => {
  test('the enrolled Defender refuses it at the handshake and keeps its policy', async () => {
    await pollUntil('the Defender to try the impostor', () => /is not the Drawbridge Console/.test(defender.log()), 60_000, 200);
    expect(defender.log()).toContain("chains to the Console's CA but lacks O=Drawbridge Console");
    expect(defender.log()).not.toMatch(/policy applied.*version=999999/);
    expect(impostorSaw).toEqual([]); // not one request got past TLS
    const ps = await docker(['ps'], { env: mallory, timeoutMs: 30_000 });
    expect(ps.code).not.toBe(0);
    expect(ps.stderr).toContain("[Drawbridge] The command 'container_list' denied for user 'mallory' by the default deny-all rule");
  });

  test("the companion, trusting the Console's CA, refuses it too, also with that CA after another in its --ca bundle", async () => {
    const fetch = consoleFetch(consoleProc.url, consoleProc.caPem);
    await expect(fetch(`${consoleProc.url}/api/v1/ca`)).rejects.toThrow(/is not the Drawbridge Console/);
    const bundle = `${(await createCa('Example Corp Root CA')).cert}${consoleProc.caPem}`;
    await expect(consoleFetch(consoleProc.url, bundle)(`${consoleProc.url}/api/v1/ca`)).rejects.toThrow(/is not the Drawbridge Console/);
  });
});
