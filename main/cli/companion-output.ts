/**
 * How companion commands talk: human text by default, one JSON document with `--json` (stdout), and errors that
 * say what to do next (stderr for humans; `{"error":{code,message,exitCode}}` on stdout for scripts).
 */
import type { CompanionStatus, HostEntry, LogoutResult } from '../index.js';
import { EXIT_CODES, exitCodeOf } from '../index.js';

export interface Output {
  readonly json: boolean;
  /** The command's result: JSON as is, or the human text. */
  result(value: unknown, human: string): void;
  /** Progress and prompts for humans (stderr), never mixed into the result. */
  note(text: string): void;
  /** Reports an error; resolves to the exit code. */
  fail(error: unknown): number;
}

export function createOutput(json: boolean, stdout: NodeJS.WritableStream = process.stdout, stderr: NodeJS.WritableStream = process.stderr): Output {
  return {
    json,
    result(value, human) {
      stdout.write(json ? `${JSON.stringify(value)}\n` : human.endsWith('\n') || human === '' ? human : `${human}\n`);
    },
    note(text) {
      stderr.write(`${text}\n`);
    },
    fail(error) {
      const exitCode = exitCodeOf(error);
      const e = error as Error & { code?: string };
      const message = exitCode === EXIT_CODES.failed && !(e.code && e.message) ? (e.stack ?? String(error)) : e.message;
      if (json) stdout.write(`${JSON.stringify({ error: { code: e.code ?? 'FAILED', message: e.message ?? String(error), exitCode } })}\n`);
      else stderr.write(`drawbridge: ${message}\n`);
      return exitCode;
    },
  };
}

/** One line per host: name, context (or why none), what you may do. */
export function formatHosts(hosts: readonly HostEntry[]): string {
  if (hosts.length === 0) return 'No Defender hosts allow you anything yet; ask your Drawbridge admin.\n';
  const width = Math.max(...hosts.map((h) => h.hostName.length));
  return hosts
    .map((h) => {
      const where = h.context ? `docker --context ${h.context}` : `no context: ${h.note ?? 'unavailable'}`;
      return `${h.hostName.padEnd(width)}  ${h.summary}\n${' '.repeat(width)}  ${where}  (${h.dockerHost ?? 'no address'})\n`;
    })
    .join('');
}

const when = (iso: string): string => `${iso.replace('T', ' ').replace(/\.\d+Z$/, 'Z')}`;

export function formatStatus(s: CompanionStatus): string {
  if (s.state === 'logged-out') return `Not logged in. ${s.action}\n`;
  const lines = [
    `Console:     ${s.console}`,
    `User:        ${s.user}${s.groups?.length ? ` (groups: ${s.groups.join(', ')})` : ''}`,
    `State:       ${s.state === 'active' ? 'logged in' : s.state === 'login-required' ? 'LOG IN AGAIN' : 'CERTIFICATE EXPIRED'}`,
    `Certificate: serial ${s.cert!.serial}, valid until ${when(s.cert!.notAfter)}`,
    `Renewal:     due ${when(s.renewal!.dueAt)}${s.renewal!.lastRenewedAt ? `, last renewed ${when(s.renewal!.lastRenewedAt)}` : ''}`,
  ];
  if (s.renewal!.lastError) lines.push(`             last attempt failed: ${s.renewal!.lastError}`);
  lines.push(`Login ends:  ${when(s.loginExpiresAt!)}`, `Secrets:     ${s.secretBackend === 'keychain' ? 'OS keychain' : 'files (0600), --insecure-file-store'}`, '', formatHosts(s.hosts ?? []).trimEnd());
  if (s.action) lines.push('', s.action);
  return `${lines.join('\n')}\n`;
}

export function formatLogout(r: LogoutResult): string {
  if (!r.wasLoggedIn) return 'Not logged in; nothing to do.\n';
  const revokedWhat = [r.revoked ? 'login' : '', r.certificateRevoked ? 'certificate' : ''].filter(Boolean).join(' and ');
  const lines = [`Logged out of ${r.console}${revokedWhat ? ` (${revokedWhat} revoked at the Console)` : ''}.`];
  if (r.removedContexts.length) lines.push(`Removed contexts: ${r.removedContexts.join(', ')}.`);
  if (r.certFiles && (r.certFiles.restored.length || r.certFiles.removed.length)) lines.push('Your docker config dir is back as it was before login.');
  lines.push(`Current docker context: ${r.currentContext}.`);
  for (const w of r.warnings) lines.push(`Warning: ${w}`);
  return `${lines.join('\n')}\n`;
}
