// One entry point for `npm start`, `npm test` and `npm run bench:<name>` on a fresh machine.
//
// - Plain Node, no dependencies: it runs before node_modules exist, and installs them (`npm ci`) when
//   node_modules/.package-lock.json is missing or older than package-lock.json.
// - Builds with `tsc -b` every time (incremental, so cheap when nothing changed); `test` also typechecks tests.
// - System commands (dockerd, busybox, …) are checked and, as root on Debian/Ubuntu, installed (test/tools/system.mjs).
// - SIGINT/SIGTERM go to the running child; we exit with the child's code (128 + signal number when it died
//   of a signal), so CI sees what the child said.
//
// Usage: node test/tools/bootstrap.mjs start|test|bench <name> [-- extra args for vitest / the script]
import { spawn } from 'node:child_process';
import { existsSync, readFileSync, rmSync, statSync } from 'node:fs';
import { constants } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const MIN_NODE = [20, 19];

function checkNode() {
  const [major = 0, minor = 0] = process.versions.node.split('.').map(Number);
  if (major < MIN_NODE[0] || (major === MIN_NODE[0] && minor < MIN_NODE[1])) {
    console.error(
      `bootstrap: Node ${MIN_NODE.join('.')} or newer is required (this is ${process.versions.node}). ` +
        'Install a current Node 20 or 22 LTS (for example from https://nodejs.org or with nvm) and run again.',
    );
    process.exit(1);
  }
}

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const BIN = join(ROOT, 'node_modules', '.bin');

let current; // the running child, for signal forwarding
let stopping; // the signal we were asked to stop with

for (const signal of ['SIGINT', 'SIGTERM']) {
  process.on(signal, () => {
    stopping = signal;
    if (current && current.exitCode === null && current.signalCode === null) current.kill(signal);
    else process.exit(128 + constants.signals[signal]);
  });
}

function seconds(ms) {
  return `${(ms / 1000).toFixed(1)} s`;
}

/** Runs a command with inherited stdio; resolves with its exit code (128 + n when killed by signal n). */
function run(command, args) {
  return new Promise((resolve) => {
    const child = spawn(command, args, { cwd: ROOT, stdio: 'inherit' });
    current = child;
    child.on('error', (error) => {
      console.error(`bootstrap: could not run ${command}: ${error.message}`);
      current = undefined;
      resolve(127);
    });
    child.on('exit', (code, signal) => {
      current = undefined;
      resolve(code ?? 128 + (constants.signals[signal] ?? 0));
    });
  });
}

/** Runs one phase, printing its name and duration; exits the process when it fails. */
async function phase(name, command, args, { exitOnFailure = true } = {}) {
  console.log(`bootstrap: ▶ ${name}`);
  const started = Date.now();
  const code = await run(command, args);
  console.log(`bootstrap: ${code === 0 ? '✔' : '✘'} ${name} (${seconds(Date.now() - started)}${code === 0 ? '' : `, exit code ${code}`})`);
  if (stopping) process.exit(code === 0 ? 128 + constants.signals[stopping] : code);
  if (code !== 0 && exitOnFailure) process.exit(code);
  return code;
}

/** One plain closing line, `tests: N passed, N failed, N skipped`, that any CI reader understands. */
function printTotals(report) {
  try {
    const r = JSON.parse(readFileSync(report, 'utf8'));
    console.log(`tests: ${r.numPassedTests} passed, ${r.numFailedTests} failed, ${r.numPendingTests + r.numTodoTests} skipped`);
  } catch {
    console.log('tests: no report was written (vitest did not finish)');
  }
}

async function ensureDependencies() {
  const lock = join(ROOT, 'package-lock.json');
  const installed = join(ROOT, 'node_modules', '.package-lock.json');
  if (!existsSync(lock)) {
    console.error('bootstrap: package-lock.json is missing; run `npm install` once to create it');
    process.exit(1);
  }
  let reason;
  if (!existsSync(installed)) reason = 'node_modules is not installed';
  else if (statSync(installed).mtimeMs < statSync(lock).mtimeMs) reason = 'node_modules is older than package-lock.json';
  if (!reason) return;
  console.log(`bootstrap: ${reason}: running npm ci`);
  await phase('npm ci', 'npm', ['ci']);
}

async function systemCheck(need) {
  console.log('bootstrap: ▶ system check');
  const started = Date.now();
  const { ensureSystem } = await import('./system.mjs');
  try {
    await ensureSystem({ install: true, need });
  } catch (error) {
    console.error(`bootstrap: ${error.message}`);
    process.exit(1);
  }
  console.log(`bootstrap: ✔ system check (${seconds(Date.now() - started)})`);
}

async function build({ tests }) {
  await phase('build (tsc -b)', join(BIN, 'tsc'), ['-b']);
  if (tests) await phase('typecheck tests (tsc -p tsconfig.tests.json)', join(BIN, 'tsc'), ['-p', 'tsconfig.tests.json']);
}

function usage() {
  console.error('usage: node test/tools/bootstrap.mjs start|test|bench <name> [-- args]');
  process.exit(2);
}

async function main() {
  checkNode();
  const [command, ...rest] = process.argv.slice(2);
  // `npm test -- x` already drops the `--`; a direct `bootstrap.mjs test -- x` keeps it.
  const passThrough = (args) => (args[0] === '--' ? args.slice(1) : args);
  const SYSTEM = ['dockerd', 'docker', 'busybox', 'openssl'];

  switch (command) {
    case 'test': {
      await ensureDependencies();
      await build({ tests: true });
      await systemCheck([...SYSTEM, 'chromium', 'gnome-keyring', 'dbus']); // browser login tests (Playwright); the real keychain
      const report = join(ROOT, 'dist', 'vitest-report.json');
      rmSync(report, { force: true });
      const code = await phase('vitest', join(BIN, 'vitest'), ['run', '--reporter=default', '--reporter=json', `--outputFile.json=${report}`, ...passThrough(rest)], { exitOnFailure: false });
      printTotals(report);
      process.exit(code);
      break;
    }
    case 'start': {
      await ensureDependencies();
      await build({ tests: false });
      const script = join(ROOT, 'dist', 'test', 'tools', 'start.js');
      if (!existsSync(script)) {
        console.error('bootstrap: dist/test/tools/start.js is missing: test/tools/start.ts has not been written yet (or did not build).');
        process.exit(1);
      }
      await systemCheck(SYSTEM);
      process.exit(await phase('start', process.execPath, [script, ...passThrough(rest)], { exitOnFailure: false }));
      break;
    }
    case 'bench': {
      const [name, ...args] = rest;
      if (!name || !/^[a-z0-9][a-z0-9-]*$/.test(name)) usage();
      await ensureDependencies();
      await build({ tests: false });
      const script = join(ROOT, 'dist', 'test', 'bench', `${name}.js`);
      if (!existsSync(script)) {
        console.error(`bootstrap: dist/test/bench/${name}.js is missing: is there a test/bench/${name}.ts?`);
        process.exit(1);
      }
      // The companion bench signs in with a real browser and keeps secrets in a real keychain; the others compare with HAProxy.
      await systemCheck([...SYSTEM, ...(name === 'companion' ? ['chromium', 'gnome-keyring', 'dbus'] : ['haproxy'])]);
      process.exit(await phase(`bench ${name}`, process.execPath, [script, ...passThrough(args)], { exitOnFailure: false }));
      break;
    }
    default:
      usage();
  }
}

main().catch((error) => {
  console.error(`bootstrap: ${error.stack ?? error}`);
  process.exit(1);
});
