/**
 * The companion's CLI commands: `login`, `logout`, `status`, `hosts`, `use`, `env`, `can`, `renew`, `agent`.
 * Each parses its arguments, calls one verb of the companion core (main/index.ts) and prints its result
 * (companion-output.ts). Exit codes: EXIT_CODES (companion-errors.ts, README "drawbridge CLI").
 *
 * - The docker config dir is the CLI's own: `$DOCKER_CONFIG`, else `~/.docker`.
 * - `login` waits for the browser or the device code for `--timeout` seconds (default 300); Ctrl-C or the
 *   timeout ends it with 130 and nothing written.
 */
import { readFile } from 'node:fs/promises';
import { parseArgs, type ParseArgsConfig } from 'node:util';
import {
  companionStatus, CompanionError, dockerConfigDir, dockerEnvFor, DockerContextStore, formatEnvCommand, EXIT_CODES, explainAction, login, logout, openBrowser,
  renewCertificate, runRenewalAgent, syncHosts, useHost, readState,
} from '../index.js';
import { createOutput, formatHosts, formatLogout, formatStatus, type Output } from './companion-output.js';

export const COMPANION_COMMANDS = ['login', 'logout', 'status', 'hosts', 'use', 'env', 'can', 'renew', 'agent'] as const;

export const COMPANION_USAGE = `  login URL   log in to a Console; every host you may use becomes a docker context
              [--device] [--ca FILE | --pin sha256//…] [--insecure-file-store] [--timeout SECS]
  logout      revoke the login, remove its keys, contexts and files, restore what was there
  status      who you are, certificate and renewal, hosts (offline)
  hosts       your hosts and what you may do there (refreshes the contexts)
  use HOST    make drawbridge-HOST the docker CLI's current context ('default' to go back)
  env HOST    print export DOCKER_HOST=… DOCKER_TLS_VERIFY=1 DOCKER_CERT_PATH=… for HOST
  can ACTION --host HOST   may you run ACTION on HOST? (exit 0 yes, 1 no)
  renew       renew the certificate now
  agent       keep running and renew certificates at 2/3 of their lifetime

  Every companion command takes --json. Exit codes: 0 ok, 1 denied, 2 usage, 3 log in (again),
  4 Console unreachable or unverified, 5 no keychain, 6 other failure, 130 cancelled.
`;

type Options = ParseArgsConfig['options'];

const COMMON: Options = { json: { type: 'boolean' }, help: { type: 'boolean', short: 'h' } };

const OPTIONS: Record<(typeof COMPANION_COMMANDS)[number], { options: Options; positionals: number; usage: string }> = {
  login: {
    options: { device: { type: 'boolean' }, ca: { type: 'string' }, pin: { type: 'string' }, 'insecure-file-store': { type: 'boolean' }, 'allow-file-keys': { type: 'boolean' }, timeout: { type: 'string' } },
    positionals: 1,
    usage: 'drawbridge login <console-url> [--device] [--ca FILE | --pin sha256//…] [--insecure-file-store (or --allow-file-keys)] [--timeout SECS] [--json]',
  },
  logout: { options: {}, positionals: 0, usage: 'drawbridge logout [--json]' },
  status: { options: {}, positionals: 0, usage: 'drawbridge status [--json]' },
  hosts: { options: { offline: { type: 'boolean' } }, positionals: 0, usage: 'drawbridge hosts [--offline] [--json]' },
  use: { options: {}, positionals: 1, usage: 'drawbridge use <host> [--json]' },
  env: { options: {}, positionals: 1, usage: 'drawbridge env <host> [--json]' },
  can: { options: { host: { type: 'string' } }, positionals: 1, usage: 'drawbridge can <action> --host <host> [--json]' },
  renew: { options: {}, positionals: 0, usage: 'drawbridge renew [--json]' },
  agent: { options: {}, positionals: 0, usage: 'drawbridge agent [--json]' },
};

type Values = Record<string, string | boolean | undefined>;

/** An AbortSignal for SIGINT/SIGTERM (and an optional deadline), with the reason as a CompanionError. */
function interruption(timeoutS?: number): { signal: AbortSignal; dispose(): void } {
  const controller = new AbortController();
  const onSignal = (sig: NodeJS.Signals) => controller.abort(new CompanionError('CANCELLED', `cancelled (${sig}); nothing was written`));
  process.on('SIGINT', onSignal).on('SIGTERM', onSignal);
  const timer = timeoutS ? setTimeout(() => controller.abort(new CompanionError('TIMED_OUT', `no sign-in within ${timeoutS} s; nothing was written. Run the command again (--timeout SECS to wait longer)`)), timeoutS * 1000) : undefined;
  timer?.unref();
  return {
    signal: controller.signal,
    dispose() {
      clearTimeout(timer);
      process.off('SIGINT', onSignal).off('SIGTERM', onSignal);
    },
  };
}

async function runLogin(out: Output, configDir: string, url: string, v: Values): Promise<number> {
  const timeout = v.timeout === undefined ? 300 : Number(v.timeout);
  if (!Number.isFinite(timeout) || timeout <= 0) throw new CompanionError('USAGE', `--timeout must be a number of seconds, not ${String(v.timeout)}`);
  const ca = typeof v.ca === 'string' ? await readFile(v.ca, 'utf8').catch(() => {
    throw new CompanionError('USAGE', `cannot read --ca ${v.ca}`);
  }) : undefined;
  const stop = interruption(timeout);
  try {
    const result = await login({
      consoleUrl: url,
      configDir,
      ...(ca ? { ca } : {}),
      ...(typeof v.pin === 'string' ? { pin: v.pin } : {}),
      allowFileFallback: v['insecure-file-store'] === true || v['allow-file-keys'] === true,
      signal: stop.signal,
      flow: v.device
        ? { kind: 'device', onCode: (c) => out.note(`To sign in, open ${c.verificationUri} and enter the code ${c.userCode}\n(or open ${c.verificationUriComplete ?? c.verificationUri}). Waiting… (Ctrl-C to cancel)`) }
        : {
            kind: 'browser',
            openBrowser: (u) => openBrowser(u),
            onUrl: (u, opened) => out.note(`${opened ? 'Your browser has been opened to sign in. If it did not open, visit' : 'Open this address in a browser to sign in'}:\n  ${u}\nWaiting… (Ctrl-C to cancel)`),
          },
    });
    if (result.secretBackend === 'file') out.note('Warning: no OS keychain; your private key and refresh token are in files with mode 0600 (--insecure-file-store).');
    const ready = result.hosts.filter((h) => h.context);
    out.result(result, `Logged in to ${result.console} as ${result.user}.\n${formatHosts(result.hosts)}${ready.length ? `\nSwitch with: drawbridge use ${ready[0]!.hostName}  (or docker --context ${ready[0]!.context} …)\n` : ''}`);
    return EXIT_CODES.ok;
  } finally {
    stop.dispose();
  }
}

async function runAgent(out: Output, configDir: string): Promise<number> {
  const stop = interruption();
  out.note(`drawbridge agent: renewing certificates for ${configDir} at 2/3 of their lifetime (Ctrl-C to stop)`);
  try {
    await runRenewalAgent(configDir, {
      signal: stop.signal,
      events: {
        renewed: (r) => out.result({ event: 'renewed', ...r }, `renewed: serial ${r.serial}, valid until ${r.notAfter} (${r.tookMs.toFixed(0)} ms)`),
        failed: (e, retry) => out.result({ event: 'failed', message: e.message, retryInMs: retry }, `renewal failed: ${e.message}${retry === null ? '' : ` (retrying in ${Math.round(retry / 1000)} s)`}`),
      },
    });
  } finally {
    stop.dispose();
  }
  return EXIT_CODES.ok;
}

async function dispatch(command: (typeof COMPANION_COMMANDS)[number], out: Output, configDir: string, args: string[], v: Values): Promise<number> {
  switch (command) {
    case 'login':
      return runLogin(out, configDir, args[0]!, v);
    case 'logout': {
      const r = await logout(configDir);
      out.result(r, formatLogout(r));
      return EXIT_CODES.ok;
    }
    case 'status': {
      const s = await companionStatus(configDir);
      out.result(s, formatStatus(s));
      return s.state === 'active' ? EXIT_CODES.ok : s.state === 'expired' ? EXIT_CODES.failed : EXIT_CODES.loginRequired;
    }
    case 'hosts': {
      const hosts = v.offline ? ((await readState(configDir))?.hosts ?? []) : (await syncHosts(configDir)).hosts;
      out.result({ hosts }, formatHosts(hosts));
      return EXIT_CODES.ok;
    }
    case 'use': {
      const r = await useHost(configDir, args[0]!);
      for (const w of r.warnings) out.note(`Warning: ${w.message}`);
      out.result(r, `Current docker context: ${r.context}${r.effective !== r.context ? ` (but docker commands in this shell use "${r.effective}")` : ''}.`);
      return EXIT_CODES.ok;
    }
    case 'env': {
      const context = await new DockerContextStore(configDir).findHost(args[0]!);
      if (!context) throw new CompanionError('USAGE', `no Drawbridge context for "${args[0]}"; run drawbridge hosts to see yours`);
      const vars = dockerEnvFor(context);
      out.result(vars, formatEnvCommand(vars));
      return EXIT_CODES.ok;
    }
    case 'can': {
      if (typeof v.host !== 'string') throw new CompanionError('USAGE', 'which host? drawbridge can <action> --host <host>');
      const e = await explainAction(configDir, args[0]!, v.host);
      out.result(e, e.allowed ? `yes: ${e.action} on ${e.host} is allowed by rule '${e.rule}'` : `no: ${e.action} on ${e.host} is denied by rule '${e.rule ?? 'Default - deny all'}'`);
      return e.allowed ? EXIT_CODES.ok : EXIT_CODES.denied;
    }
    case 'renew': {
      const r = await renewCertificate(configDir);
      out.result(r, `Renewed: serial ${r.serial}, valid until ${r.notAfter}.`);
      return EXIT_CODES.ok;
    }
    case 'agent':
      return runAgent(out, configDir);
  }
}

export function isCompanionCommand(command: string | undefined): command is (typeof COMPANION_COMMANDS)[number] {
  return (COMPANION_COMMANDS as readonly (string | undefined)[]).includes(command);
}

/** Runs one companion command; resolves to its exit code. */
export async function runCompanionCommand(command: (typeof COMPANION_COMMANDS)[number], argv: string[], env: NodeJS.ProcessEnv = process.env): Promise<number> {
  const spec = OPTIONS[command];
  let parsed: { values: Values; positionals: string[] };
  try {
    parsed = parseArgs({ args: argv, options: { ...COMMON, ...spec.options }, allowPositionals: true, strict: true }) as typeof parsed;
  } catch (error) {
    process.stderr.write(`drawbridge ${command}: ${(error as Error).message}\nUsage: ${spec.usage}\n`);
    return EXIT_CODES.usage;
  }
  const out = createOutput(parsed.values.json === true);
  if (parsed.values.help) {
    process.stdout.write(`Usage: ${spec.usage}\n`);
    return EXIT_CODES.ok;
  }
  if (parsed.positionals.length !== spec.positionals) {
    return out.fail(new CompanionError('USAGE', `expected ${spec.positionals || 'no'} argument(s). Usage: ${spec.usage}`));
  }
  try {
    return await dispatch(command, out, dockerConfigDir(env), parsed.positionals, parsed.values);
  } catch (error) {
    return out.fail(error);
  }
}
