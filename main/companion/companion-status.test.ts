import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { companionStatus } from './companion-status.js';
import { renewalDueAt, writeState, type CompanionState } from './companion-state.js';
import { EXIT_CODES, exitCodeOf, CompanionError } from './companion-errors.js';

const dirs: string[] = [];
afterEach(async () => {
  for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true });
});

const state = (over: Partial<CompanionState> = {}): CompanionState => ({
  version: 1,
  console: 'https://console.example:8083',
  user: 'alice',
  groups: ['devs'],
  secretBackend: 'keychain',
  cert: { pem: '', ca: '', serial: 'ab', notBefore: '2030-01-01T00:00:00.000Z', notAfter: '2030-01-01T03:05:00.000Z', receivedAt: '2030-01-01T00:05:00.000Z' },
  loginExpiresAt: '2030-01-15T00:00:00.000Z',
  session: { state: 'active' },
  loggedInAt: '2030-01-01T00:05:00.000Z',
  renewedAt: null,
  lastRenewalError: null,
  hosts: [],
  configDirExisted: true,
  previousContext: null,
  ...over,
});

describe('renewalDueAt', () => {
  it.each([
    ['two thirds from arrival (notBefore is back-dated)', { notBefore: '2030-01-01T00:00:00Z', receivedAt: '2030-01-01T00:05:00Z', notAfter: '2030-01-01T03:05:00Z' }, '2030-01-01T02:05:00.000Z'],
    ['from notBefore when it is later than arrival', { notBefore: '2030-01-01T00:00:00Z', receivedAt: '2029-12-31T00:00:00Z', notAfter: '2030-01-01T03:00:00Z' }, '2030-01-01T02:00:00.000Z'],
    ['from notBefore without an arrival time', { notBefore: '2030-01-01T00:00:00Z', notAfter: '2030-01-01T00:00:15Z' }, '2030-01-01T00:00:10.000Z'],
  ])('%s', (_name, cert, due) => {
    expect(new Date(renewalDueAt(cert)).toISOString()).toBe(due);
  });
});

describe('companionStatus', () => {
  it.each([
    ['active', state(), Date.parse('2030-01-01T01:00:00Z'), 'active', undefined],
    ['expired certificate', state(), Date.parse('2030-01-01T04:00:00Z'), 'expired', /drawbridge renew/],
    ['login ended', state({ session: { state: 'login-required', reason: 'revoked', since: '2030-01-01T01:00:00Z' } }), Date.parse('2030-01-01T01:00:00Z'), 'login-required', /^revoked; log in again: drawbridge login https:\/\/console\.example:8083$/],
  ])('%s', async (_name, s, now, expected, action) => {
    const dir = await mkdtemp(join(tmpdir(), 'db-status-'));
    dirs.push(dir);
    await writeState(dir, s);
    const status = await companionStatus(dir, now);
    expect(status.state).toBe(expected);
    if (action) expect(status.action).toMatch(action);
    else expect(status.action).toBeUndefined();
    expect(status.renewal!.dueAt).toBe('2030-01-01T02:05:00.000Z');
  });

  it('logged out without a state file', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'db-status-'));
    dirs.push(dir);
    expect(await companionStatus(dir)).toEqual({ state: 'logged-out', action: 'log in: drawbridge login <console-url>' });
  });
});

describe('exit codes', () => {
  it.each([
    [new CompanionError('USAGE', 'x'), EXIT_CODES.usage],
    [new CompanionError('LOGIN_REQUIRED', 'x'), 3],
    [new CompanionError('NOT_LOGGED_IN', 'x'), 3],
    [new CompanionError('CONSOLE_UNREACHABLE', 'x'), 4],
    [new CompanionError('CONSOLE_UNTRUSTED', 'x'), 4],
    [Object.assign(new Error('no keychain'), { code: 'KEYCHAIN_UNAVAILABLE' }), 5],
    [new CompanionError('CANCELLED', 'x'), 130],
    [new CompanionError('TIMED_OUT', 'x'), 130],
    [new Error('boom'), 6],
  ])('%s → %i', (error, code) => {
    expect(exitCodeOf(error)).toBe(code);
  });
});
