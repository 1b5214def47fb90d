/**
 * A user in a test Console and a certificate the Console issued for them, written in the docker CLI's layout
 * (`ca.pem`, `cert.pem`, `key.pem`), plus the environment that points the real docker CLI at a Defender with it.
 */
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import type { ConsoleProcess } from './console-process.js';
import { makeCsr } from './csr.js';
import { writePemFiles } from './pki.js';

export async function consoleUserCert(consoleProc: ConsoleProcess, dir: string, name: string, groups: string[]): Promise<{ dir: string; serial: string }> {
  const password = `${name}-password-1234`;
  const created = await consoleProc.call('POST', '/api/v1/users', { token: await consoleProc.adminToken(), json: { name, password, role: 'user', groups } });
  if (created.status !== 201 && created.status !== 409) throw new Error(`creating user ${name}: ${created.status} ${created.text}`);
  const token = await consoleProc.login(name, password);
  const { csr, key } = await makeCsr();
  const issued = await consoleProc.call<{ cert: string; serial: string }>('POST', '/api/v1/certs', { token, json: { csr } });
  if (issued.status !== 201) throw new Error(`issuing a certificate for ${name}: ${issued.status} ${issued.text}`);
  const certDir = join(dir, 'users', `${name}-${randomBytes(3).toString('hex')}`);
  await writePemFiles(certDir, { 'ca.pem': consoleProc.caPem, 'cert.pem': issued.body.cert, 'key.pem': key });
  return { dir: certDir, serial: issued.body.serial };
}

/** The docker CLI's environment for `dockerHost` (a Defender) as the user whose certificates are in `certDir`. */
export function dockerEnvFor(dockerHost: string, certDir: string, configDir: string): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, DOCKER_HOST: dockerHost, DOCKER_TLS_VERIFY: '1', DOCKER_CERT_PATH: certDir, DOCKER_CONFIG: configDir };
  delete env.DOCKER_CONTEXT;
  return env;
}
