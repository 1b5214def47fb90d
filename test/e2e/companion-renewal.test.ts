// Certificate renewal by the companion, all real (see companion-cli.test.ts): a Console that issues certificates
// for 15 s, a `drawbridge agent` started once and left alone, and the docker CLI still working after the first
// certificate has expired. Then the Console ends the login (alice's groups change): renewal fails, and status,
// renew and the agent all say "log in again" with the command, exit code 3.
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { browserSignIn, createCompanionMachine, launchChromium, type CompanionMachine, type RunningCli } from '../support/companion-cli.js';
import { ALICE, startCompanionWorld, type CompanionWorld } from '../support/companion-world.js';
import type {} from '../support/global-setup.js';
import { pollUntil } from '../support/poll.js';

const LIFETIME_S = 15;

let world: CompanionWorld;
let machine: CompanionMachine;
let browser: Browser;
let agent: RunningCli | undefined;

const status = async () => JSON.parse((await machine.cli(['status', '--json'])).stdout);
const agentEvents = (): { event: string; serial?: string; message?: string; retryInMs?: number | null }[] =>
  agent!.stdout().split('\n').filter(Boolean).map((l) => JSON.parse(l));

beforeAll(async () => {
  world = await startCompanionWorld({ dockerHost: inject('dockerHost'), consoleArgs: ['--cert-max-lifetime', String(LIFETIME_S)] });
  machine = await createCompanionMachine();
  browser = await launchChromium(world.consolePin);
  const caFile = join(machine.keyring.dir, 'console-ca.pem');
  await writeFile(caFile, world.console.caPem);
  const run = machine.startCli(['login', world.console.url, '--ca', caFile]);
  await browserSignIn(browser, await machine.nextUrl(), ALICE.name, ALICE.password);
  const r = await run.exited();
  expect(r.code, r.stderr).toBe(0);
});

afterAll(async () => {
  agent?.child.kill('SIGTERM');
  await agent?.exited(10_000);
  await browser?.close();
  await machine?.remove();
  await world?.stop();
});

describe('a certificate with a lifetime of seconds', () => {
  it('is renewed by the agent at about 2/3 of its lifetime, without user action, and docker keeps working', async () => {
    const first = await status();
    expect(Date.parse(first.cert.notAfter) - Date.parse(first.cert.receivedAt)).toBeLessThanOrEqual(LIFETIME_S * 1000);
    agent = machine.startCli(['agent', '--json']);
    const renewed = await pollUntil('the agent to renew', () => agentEvents().find((e) => e.event === 'renewed'), 60_000, 200);
    expect(renewed.serial).not.toBe(first.cert.serial);
    const after = await status();
    expect(after.state).toBe('active');
    // Once, at about 10 s of 15: not in a loop (the Console back-dates notBefore, which must not count).
    expect(agentEvents().filter((e) => e.event === 'renewed'), agent!.stdout()).toHaveLength(1);
    expect(Date.parse(after.renewal.lastRenewedAt)).toBeGreaterThanOrEqual(Date.parse(first.renewal.dueAt));
    expect(agentEvents().map((e) => e.serial), agent!.stdout()).toContain(after.cert.serial);
    expect(after.renewal.lastRenewedAt).toEqual(expect.any(String));
    // Past the first certificate's end: the docker CLI works with what the agent wrote.
    await pollUntil('the first certificate to expire', () => Date.now() > Date.parse(first.cert.notAfter) + 1000, 60_000, 200);
    const ps = await machine.docker(['--context', 'drawbridge-dev-a', 'ps']);
    expect(ps.code, ps.stderr).toBe(0);
    const viaFiles = await machine.docker(['ps'], { DOCKER_HOST: `tcp://127.0.0.1:${world.devA.port}`, DOCKER_TLS_VERIFY: '1' });
    expect(viaFiles.code, viaFiles.stderr).toBe(0);
  }, 90_000);
});

describe('a login the Console ended', () => {
  it('leads to the "log in again" state: status, renew and the agent say so, exit code 3', async () => {
    const r = await world.adminCall('PATCH', `/api/v1/users/${ALICE.name}`, { groups: ['devs', 'oncall'] });
    expect(r.status, r.text).toBe(200);
    const failed = await pollUntil('the agent to find the login over', () => agentEvents().find((e) => e.event === 'failed'), 60_000, 200);
    expect(failed.retryInMs).toBeNull();
    expect(failed.message).toContain(`log in again: drawbridge login ${world.console.url}`);
    const s = await machine.cli(['status']);
    expect(s.code).toBe(3);
    expect(s.stdout).toContain('State:       LOG IN AGAIN');
    expect(s.stdout).toContain(`log in again: drawbridge login ${world.console.url}`);
    const renew = await machine.cli(['renew', '--json']);
    expect(renew.code).toBe(3);
    expect(JSON.parse(renew.stdout).error).toMatchObject({ code: 'LOGIN_REQUIRED', exitCode: 3 });
    const can = await machine.cli(['can', 'container_list', '--host', 'dev-a']);
    expect(can.code).toBe(3);
    expect(can.stderr).toContain(`drawbridge login ${world.console.url}`);
  }, 90_000);

  it('logging in again ends that state, and the running agent carries on with the new login', async () => {
    const run = machine.startCli(['login', world.console.url]); // the CA remembered from the first login
    await browserSignIn(browser, await machine.nextUrl(), ALICE.name, ALICE.password);
    const r = await run.exited();
    expect(r.code, r.stderr).toBe(0);
    const s = await status();
    expect(s).toMatchObject({ state: 'active', groups: ['devs', 'oncall'] });
    const before = agentEvents().filter((e) => e.event === 'renewed').length;
    await pollUntil('the agent to renew the new login', () => agentEvents().filter((e) => e.event === 'renewed').length > before, 60_000, 200);
    expect((await machine.docker(['--context', 'drawbridge-dev-a', 'ps'])).code).toBe(0);
  }, 90_000);
});
