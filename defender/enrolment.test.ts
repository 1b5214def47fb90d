import { existsSync, mkdtempSync, readdirSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, test } from 'vitest';
import { loadEnrolment, saveRenewedCertificates, type Enrolment } from './enrolment.js';
import { ensurePrivateDir } from './fs-atomic.js';

// loadEnrolment reads PEM files as text; these stand in for them (only which pair is seen matters here).
const pems = (tag: string) => ({ serverCert: `server-cert ${tag}`, serverKey: `server-key ${tag}`, clientCert: `client-cert ${tag}`, clientKey: `client-key ${tag}` });
const OLD: Enrolment = {
  consoleUrl: 'https://console:8083',
  hostName: 'dev-a',
  ca: 'ca',
  ...pems('old'),
  listener: { type: 'tcp', address: '127.0.0.1:2376' },
  enrolledAt: '2026-01-01T00:00:00.000Z',
  certsReceivedAt: '2026-01-01T00:00:00.000Z',
};
const NEW = { ...pems('new'), certsReceivedAt: '2026-06-01T00:00:00.000Z' };

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

/** A state directory holding OLD, as enrolment leaves it. */
function enrolled(): string {
  const dir = mkdtempSync(join(tmpdir(), 'drawbridge-enrolment-'));
  dirs.push(dir);
  ensurePrivateDir(dir);
  writeFileSync(join(dir, 'ca.pem'), OLD.ca);
  for (const [f, v] of Object.entries({ 'server-cert.pem': OLD.serverCert, 'server-key.pem': OLD.serverKey, 'client-cert.pem': OLD.clientCert, 'client-key.pem': OLD.clientKey })) writeFileSync(join(dir, f), v);
  writeFileSync(join(dir, 'state.json'), JSON.stringify({ consoleUrl: OLD.consoleUrl, hostName: OLD.hostName, listener: OLD.listener, enrolledAt: OLD.enrolledAt }));
  return dir;
}

describe('renewed certificates in the state directory', () => {
  test('an older state without certsReceivedAt counts from the enrolment', () => {
    expect(loadEnrolment(enrolled())).toEqual(OLD);
  });

  test('are saved all together, 0600, and loaded back; nothing staged is left', () => {
    const dir = enrolled();
    const saved = saveRenewedCertificates(dir, OLD, NEW);
    expect(saved).toEqual({ ...OLD, ...NEW });
    expect(loadEnrolment(dir)).toEqual(saved);
    for (const f of ['server-key.pem', 'client-key.pem', 'server-cert.pem', 'client-cert.pem', 'state.json']) expect(statSync(join(dir, f)).mode & 0o777).toBe(0o600);
    expect(existsSync(join(dir, 'renewal.pending'))).toBe(false);
  });

  test('a crash before the READY mark leaves the old pairs; one after it is finished at the next load, also half way through', () => {
    const staged = (dir: string): string => join(dir, 'renewal.pending');
    // Stage a renewal the way saveRenewedCertificates does, in another directory, and copy the stage over.
    const stage = (ready: boolean, moved: readonly string[] = []): string => {
      const source = enrolled();
      saveRenewedCertificates(source, OLD, NEW);
      const dir = enrolled();
      ensurePrivateDir(staged(dir));
      for (const f of ['server-cert.pem', 'server-key.pem', 'client-cert.pem', 'client-key.pem', 'state.json']) {
        renameSync(join(source, f), join(moved.includes(f) ? dir : staged(dir), f)); // moved: renamed into place before the crash
      }
      if (ready) writeFileSync(join(staged(dir), 'READY'), '');
      return dir;
    };
    const notReady = stage(false);
    expect(loadEnrolment(notReady)).toEqual(OLD);
    expect(existsSync(staged(notReady))).toBe(false);

    const ready = stage(true);
    expect(loadEnrolment(ready)).toEqual({ ...OLD, ...NEW });
    expect(existsSync(staged(ready))).toBe(false);

    const halfway = stage(true, ['server-cert.pem', 'server-key.pem']);
    expect(loadEnrolment(halfway)).toEqual({ ...OLD, ...NEW });
    expect(readdirSync(halfway).sort()).toEqual(['ca.pem', 'client-cert.pem', 'client-key.pem', 'server-cert.pem', 'server-key.pem', 'state.json']);
  });
});
