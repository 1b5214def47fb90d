import { describe, expect, it } from 'vitest';
import { parseDefenderConfig } from './config.js';

const FILE_MODE = ['--tls-ca', 'ca.pem', '--tls-cert', 'c.pem', '--tls-key', 'k.pem', '--rules', 'r.yaml'];
const noFile = (): string => {
  throw new Error('no config file in this test');
};

describe('parseDefenderConfig: file mode and Console mode', () => {
  it('file mode keeps its defaults', () => {
    expect(parseDefenderConfig(FILE_MODE, noFile)).toMatchObject({ mode: 'file', listen: '0.0.0.0:9998', auditLog: '-', tlsCa: 'ca.pem', rules: 'r.yaml' });
  });

  it('Console mode takes repeatable --address, --re-enroll and a default state directory', () => {
    const c = parseDefenderConfig(['--console', 'https://console:8083/', '--join-token', 'dbj_0123456789', '--console-ca', 'ca.pem', '--address', 'dev-a.example', '--address', '10.0.0.5', '--re-enroll'], noFile);
    expect(c).toMatchObject({ mode: 'console', console: 'https://console:8083', joinToken: 'dbj_0123456789', addresses: ['dev-a.example', '10.0.0.5'], reEnroll: true, auditLog: undefined, hostName: undefined });
    expect(c?.mode === 'console' && c.state).toMatch(/drawbridge\/defender$/);
  });

  it('reads Console mode from a YAML file too', () => {
    const c = parseDefenderConfig(['--config', 'd.yaml'], () => 'console: https://console:8083\nconsolePin: sha256//AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\naddresses: [a.example]\nstate: /srv/db\n');
    expect(c).toMatchObject({ mode: 'console', consolePin: 'sha256//AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=', addresses: ['a.example'], state: '/srv/db' });
  });

  it.each([
    ['--console with --rules', ['--console', 'https://c:8083', '--rules', 'r.yaml'], /--console cannot be combined with --rules: a Defender takes its rules and certificates either from files or from a Console/],
    ['--console with TLS files', ['--console', 'https://c:8083', '--tls-ca', 'a', '--tls-key', 'k'], /--console cannot be combined with --tls-ca, --tls-key/],
    ['Console flags without --console', [...FILE_MODE, '--join-token', 'dbj_0123456789'], /--join-token only work\(s\) with --console URL/],
    ['a plain-http Console', ['--console', 'http://c:8083'], /--console \(console\): must be an https:\/\/ URL/],
    ['a malformed pin', ['--console', 'https://c:8083', '--console-pin', 'sha1//abc'], /--console-pin \(consolePin\): must be sha256\/\//],
    ['--re-enroll without a token', ['--console', 'https://c:8083', '--re-enroll'], /--re-enroll needs --join-token/],
    ['neither mode', [], /--tls-ca \(tlsCa\): is required[\s\S]*--rules \(rules\): is required/],
  ])('refuses %s, naming the option', (_, argv, message) => {
    expect(() => parseDefenderConfig(argv, noFile)).toThrow(message);
  });
});
