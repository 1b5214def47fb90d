// Checks (and on a Debian/Ubuntu machine where we are root, installs) the system commands the end-to-end tests
// and benchmarks drive for real. Plain Node, no dependencies: it runs before node_modules exist.
//
// - `dockerd` needs its companions too (containerd, its runc shim, runc): test/support/dockerd.ts starts a
//   private containerd next to a private dockerd.
// - `docker` is whichever client comes first on PATH (a newer /usr/local/bin/docker stays in front of Debian's).
// - `busybox` must be /bin/busybox and statically linked (no ELF PT_INTERP): it is copied alone into the test
//   image, so a dynamic one would not start there. Debian's `busybox` package is dynamic; `busybox-static` is not.
// - `chromium` must be /usr/bin/chromium (Debian's): Playwright (playwright-core, no bundled browser) launches it by
//   that path for the browser login tests.
// - Nothing is installed unless asked (install: true), we are root and apt-get exists; apt never reads stdin.
//
// Usage as a script: node test/tools/system.mjs [--install] [dockerd docker busybox haproxy openssl chromium gnome-keyring dbus]
import { spawnSync } from 'node:child_process';
import { accessSync, constants, existsSync, openSync, readSync, closeSync } from 'node:fs';
import { delimiter, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const BUSYBOX_PATH = '/bin/busybox';
export const CHROMIUM_PATH = '/usr/bin/chromium';

/** What each need checks for, and the Debian package that provides it. */
const NEEDS = {
  dockerd: { pkg: 'docker.io', check: () => missingCommands(['dockerd', 'containerd', 'containerd-shim-runc-v2', 'runc']) },
  docker: { pkg: 'docker.io', check: () => missingCommands(['docker']) },
  busybox: { pkg: 'busybox-static', check: checkBusybox },
  haproxy: { pkg: 'haproxy', check: () => missingCommands(['haproxy']) },
  openssl: { pkg: 'openssl', check: () => missingCommands(['openssl']) },
  chromium: { pkg: 'chromium', check: checkChromium },
  // The real OS keychain for the companion's keychain tests: gnome-keyring's Secret Service on a private D-Bus
  // session (`dbus-run-session` is in dbus-daemon and `dbus-send` in dbus-bin on Debian 12; `dbus` pulls in both).
  'gnome-keyring': { pkg: 'gnome-keyring', check: () => missingCommands(['gnome-keyring-daemon']) },
  dbus: { pkg: 'dbus', check: () => missingCommands(['dbus-run-session', 'dbus-send']) },
};

export const ALL_NEEDS = Object.keys(NEEDS);

export class SystemCheckError extends Error {
  name = 'SystemCheckError';
}

// dockerd, runc and friends live in sbin, which a non-login shell's PATH may lack.
const SBIN = ['/usr/local/sbin', '/usr/sbin', '/sbin'];

/** The absolute path of `command` on PATH (then the sbin directories), or undefined. */
export function findCommand(command) {
  const dirs = [...(process.env.PATH ?? '').split(delimiter).filter(Boolean), ...SBIN];
  for (const dir of dirs) {
    const candidate = join(dir, command);
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // not here
    }
  }
  return undefined;
}

function missingCommands(commands) {
  return commands.filter((c) => !findCommand(c)).map((c) => `command '${c}' not found`);
}

/** True when the ELF file at `path` has no PT_INTERP program header, i.e. needs no dynamic loader. */
export function isStaticElf(path) {
  const fd = openSync(path, 'r');
  try {
    const read = (offset, length) => {
      const buf = Buffer.alloc(length);
      if (readSync(fd, buf, 0, length, offset) !== length) throw new Error(`${path}: truncated ELF file`);
      return buf;
    };
    const ident = read(0, 16);
    if (ident.readUInt32BE(0) !== 0x7f454c46) throw new Error(`${path} is not an ELF file`);
    const is64 = ident[4] === 2;
    const le = ident[5] === 1;
    const u16 = (b, o) => (le ? b.readUInt16LE(o) : b.readUInt16BE(o));
    const u32 = (b, o) => (le ? b.readUInt32LE(o) : b.readUInt32BE(o));
    const header = read(0, is64 ? 64 : 52);
    const phoff = is64 ? Number(le ? header.readBigUInt64LE(0x20) : header.readBigUInt64BE(0x20)) : u32(header, 0x1c);
    const phentsize = u16(header, is64 ? 0x36 : 0x2a);
    const phnum = u16(header, is64 ? 0x38 : 0x2c);
    const PT_INTERP = 3;
    for (let i = 0; i < phnum; i++) {
      if (u32(read(phoff + i * phentsize, 4), 0) === PT_INTERP) return false;
    }
    return true;
  } finally {
    closeSync(fd);
  }
}

function checkBusybox() {
  if (!existsSync(BUSYBOX_PATH)) return [`${BUSYBOX_PATH} not found`];
  try {
    return isStaticElf(BUSYBOX_PATH) ? [] : [`${BUSYBOX_PATH} is dynamically linked (the test image needs the static one)`];
  } catch (error) {
    return [`${BUSYBOX_PATH} could not be read: ${error.message}`];
  }
}

function checkChromium() {
  try {
    accessSync(CHROMIUM_PATH, constants.X_OK);
    return [];
  } catch {
    return [`${CHROMIUM_PATH} not found (Playwright launches that one)`];
  }
}

function check(need) {
  const problems = {};
  for (const name of need) {
    const entry = NEEDS[name];
    if (!entry) throw new Error(`ensureSystem: unknown need '${name}' (known: ${ALL_NEEDS.join(', ')})`);
    const found = entry.check();
    if (found.length > 0) problems[name] = found;
  }
  return problems;
}

function packagesFor(problems) {
  return [...new Set(Object.keys(problems).map((name) => NEEDS[name].pkg))];
}

function describe(problems) {
  return Object.entries(problems)
    .map(([name, found]) => `  - ${name}: ${found.join('; ')} (Debian package ${NEEDS[name].pkg})`)
    .join('\n');
}

const canApt = () => existsSync('/etc/debian_version') && findCommand('apt-get') !== undefined;
const isRoot = () => typeof process.getuid === 'function' && process.getuid() === 0;

let aptUpdated = false;

function apt(args) {
  console.log(`system: apt-get ${args.join(' ')}`);
  const result = spawnSync('apt-get', args, {
    stdio: ['ignore', 'inherit', 'inherit'],
    env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' },
  });
  if (result.error) throw new SystemCheckError(`apt-get could not run: ${result.error.message}`);
  if (result.status !== 0) throw new SystemCheckError(`apt-get ${args[0]} failed with exit code ${result.status ?? result.signal}`);
}

/**
 * Makes sure the commands in `need` are present. With install=true on Debian/Ubuntu as root, missing packages
 * are installed with apt-get; otherwise a SystemCheckError says what is missing and how to install it.
 * @param {{ install?: boolean, need?: string[] }} [options]
 */
export async function ensureSystem({ install = false, need = ['dockerd', 'docker', 'busybox', 'openssl'] } = {}) {
  let problems = check(need);
  if (Object.keys(problems).length === 0) return;
  const pkgs = packagesFor(problems);

  if (install && isRoot() && canApt()) {
    console.log(`system: missing:\n${describe(problems)}\nsystem: installing ${pkgs.join(' ')}`);
    if (!aptUpdated) {
      apt(['update']);
      aptUpdated = true;
    }
    apt(['install', '-y', '--no-install-recommends', ...pkgs]);
    problems = check(need);
    if (Object.keys(problems).length === 0) return;
    throw new SystemCheckError(`still missing after installing ${pkgs.join(' ')}:\n${describe(problems)}`);
  }

  const command = `${isRoot() ? '' : 'sudo '}apt-get update && ${isRoot() ? '' : 'sudo '}DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends ${pkgs.join(' ')}`;
  const how = canApt()
    ? `Install them with:\n  ${command}`
    : `Install the equivalent of the Debian packages ${pkgs.join(', ')} with your system's package manager.`;
  throw new SystemCheckError(`the tests need system commands that are missing:\n${describe(problems)}\n${how}`);
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const args = process.argv.slice(2);
  const install = args.includes('--install');
  const need = args.filter((a) => a !== '--install');
  ensureSystem({ install, need: need.length > 0 ? need : ALL_NEEDS }).then(
    () => console.log('system: all present'),
    (error) => {
      console.error(`system: ${error.message}`);
      process.exit(1);
    },
  );
}
