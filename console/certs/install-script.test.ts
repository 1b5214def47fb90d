// The install script as text: valid POSIX sh, values quoted, the refusal script fails loudly. (It is run for real,
// end to end, in test/e2e/console-install.test.ts.)
import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { installCommand, installRefusalScript, installScript, shQuote } from './install-script.js';

const sh = (script: string, args: string[] = []) => spawnSync('sh', ['-c', script, 'sh', ...args], { encoding: 'utf8' });

const CA = '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n';

describe('install script', () => {
  it.each(["plain", "it's", "'", "$(id) `id` ${HOME} \\n", 'a\nb'])('shQuote keeps %j as one literal word', (value) => {
    const r = sh(`printf '%s' ${shQuote(value)}`);
    expect(r.stdout).toBe(value);
  });

  it('is valid sh, starts with set -eu and umask 077, and carries the values quoted', () => {
    const script = installScript({ consoleUrl: 'https://console.example:8083', pin: 'sha256//abc+/=', token: 'dbi_x', user: "o'brien", caPem: CA });
    expect(spawnSync('sh', ['-n'], { input: script, encoding: 'utf8' })).toMatchObject({ status: 0, stderr: '' });
    expect(script).toMatch(/^#!\/bin\/sh\n/);
    expect(script).toContain('\nset -eu\numask 077\n');
    expect(script).toContain("\nPIN='sha256//abc+/='\n");
    expect(script).toContain("\nCONSOLE='https://console.example:8083'\n");
    expect(script).toContain(`<<'DRAWBRIDGE_CA'\n${CA}DRAWBRIDGE_CA\n`);
    expect(script).toContain('openssl ecparam -genkey -name prime256v1 -noout');
    expect(script).toContain('${DOCKER_CERT_PATH:-$HOME/.docker}');
  });

  it('builds the CSR request body as JSON with awk', () => {
    const script = installScript({ consoleUrl: 'https://c', pin: 'p', token: 't', user: 'u', caPem: CA });
    const awk = /^awk (.*) "\$WORK\/csr.pem"/m.exec(script)![1]!;
    const r = sh(`printf 'line one\\nline two\\n' | awk ${awk}`);
    expect(JSON.parse(r.stdout)).toEqual({ csr: 'line one\nline two\n' });
  });

  it('the refusal script prints the reason on stderr and exits 1', () => {
    const r = sh(installRefusalScript("this install command was already used; don't reuse it"));
    expect(r.status).toBe(1);
    expect(r.stdout).toBe('');
    expect(r.stderr).toBe("drawbridge install: this install command was already used; don't reuse it\n");
  });

  it('the command pins the key, quotes the URL and hands the token to curl on its standard input', () => {
    expect(installCommand('https://c:8083/api/v1/certs/install.sh', 'sha256//k=', 'dbi_x')).toBe(
      "printf '%s\\n' 'header = \"X-Drawbridge-Install-Token: dbi_x\"' | curl -fsSL --pinnedpubkey 'sha256//k=' -k -K - 'https://c:8083/api/v1/certs/install.sh' | sh",
    );
  });
});
