import { describe, expect, test } from 'vitest';
import { bindSource, hostMountSources, reachesSecretsBase, refuseSecretsBaseMounts, serviceMountSources, volumeHostPaths } from './host-mounts.js';

const BASE = '/dev/shm/drawbridge-secrets-1';

describe('host paths a request mounts', () => {
  test.each([
    ['/a:/b', '/a'],
    ['/a:/b:ro', '/a'],
    ['vol:/b', null],
    ['/b', null],
  ])('bind %s → %s', (spec, source) => expect(bindSource(spec)).toBe(source));

  test('every field dockerd mounts from, as dockerd decodes it', () => {
    const body = {
      hostconfig: {
        BINDS: ['/h1:/c1', 'named:/c2', '/c3'],
        mounts: [
          { type: 'bind', source: '/h2', target: '/c4' },
          { Type: 'volume', Source: 'v', Target: '/c5', VolumeOptions: { DriverConfig: { Name: 'local', Options: { type: 'none', o: 'bind', device: '/h3' } } } },
          { Type: 'tmpfs', Target: '/c6' },
        ],
      },
    };
    expect(hostMountSources(body)).toEqual(['/h1', '/h2', '/h3']);
    expect(() => hostMountSources({ HostConfig: { Binds: ['/a:/b'], binds: ['/c:/d'] } })).toThrow(/twice/);
    expect(hostMountSources({ HostConfig: null })).toEqual([]);
    expect(volumeHostPaths({ Name: 'v', driveropts: { device: '/h4' } })).toEqual(['/h4']);
    expect(volumeHostPaths({ Name: 'v', DriverOpts: { type: 'proc', device: 'none' } })).toEqual(['none', '/proc']);
    expect(volumeHostPaths({ Name: 'v' })).toEqual([]);
    expect(hostMountSources({ HostConfig: { Mounts: [{ Type: 'volume', Target: '/x', VolumeOptions: { DriverConfig: { Options: { type: 'proc' } } } }] } })).toEqual(['/proc']);
  });

  test.each([
    [BASE, true],
    [`${BASE}/`, true],
    [`${BASE}/0123456789abcdef`, true],
    ['/dev/shm', true],
    ['/dev', true],
    ['/', true],
    ['/dev/shm/../shm/drawbridge-secrets-1', true],
    ['//dev//shm', true],
    ['/dev/shm/drawbridge-secrets-10', false],
    ['/dev/shm/other', false],
    ['/home/u', false],
  ])('%s reaches the secrets base: %s', (path, reaches) => expect(reachesSecretsBase(path, BASE)).toBe(reaches));

  test('the refusal names the path and says what to do', () => {
    expect(() => refuseSecretsBaseMounts(['/srv', '/dev/shm'], [BASE])).toThrow(`the request mounts the host path /dev/shm, which holds or contains the containers' secrets (${BASE}); mount a path outside it`);
    expect(() => refuseSecretsBaseMounts(['/srv'], [BASE])).not.toThrow();
  });
});

describe('services and process views', () => {
  test('a service spec mounts from TaskTemplate.ContainerSpec.Mounts', () => {
    expect(serviceMountSources({ Name: 's', TaskTemplate: { ContainerSpec: { Image: 'x', Mounts: [{ Type: 'bind', Source: '/dev/shm', Target: '/x' }] } } })).toEqual(['/dev/shm']);
    expect(serviceMountSources({ Name: 's' })).toEqual([]);
  });

  test.each(['/proc', '/proc/1/environ', '/proc/self/root'])('%s is refused', (path) => expect(() => refuseSecretsBaseMounts([path], [BASE])).toThrow('(/proc)'));
});
