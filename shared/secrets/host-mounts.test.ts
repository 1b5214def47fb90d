import { describe, expect, test } from 'vitest';
import { bindSource, hostMountSources, mountDataPaths, reachesSecretsBase, refuseSecretsBaseMounts, serviceMountSources, volumeHostPaths } from './host-mounts.js';

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
    expect(hostMountSources(body)).toEqual(['/h1', '/h2', '/h3', '/bind']); // '/bind': every word of the mount data `o`
    expect(() => hostMountSources({ HostConfig: { Binds: ['/a:/b'], binds: ['/c:/d'] } })).toThrow(/twice/);
    expect(hostMountSources({ HostConfig: null })).toEqual([]);
    expect(volumeHostPaths({ Name: 'v', driveropts: { device: '/h4' } })).toEqual(['/h4']);
    expect(volumeHostPaths({ Name: 'v', DriverOpts: { type: 'proc', device: 'none' } })).toEqual(['none', '/proc']);
    expect(volumeHostPaths({ Name: 'v' })).toEqual([]);
    expect(hostMountSources({ HostConfig: { Mounts: [{ Type: 'volume', Target: '/x', VolumeOptions: { DriverConfig: { Options: { type: 'proc' } } } }] } })).toEqual(['/proc']);
  });

  test.each([
    ['size=64m,uid=1000', ['/size', '/64m', '/uid', '/1000']],
    ['lowerdir=/a:/b,upperdir=/c,workdir=/d', ['/lowerdir', '/a', '/b', '/upperdir', '/c', '/workdir', '/d']],
    ['lowerdir=dev/shm/x', ['/lowerdir', '/dev/shm/x']],
    // overlayfs unescapes (`\:` is part of the path); a filesystem that does not sees two paths: both are checked
    ['lowerdir=/x\\:/dev/shm/b', ['/lowerdir', '/x:/dev/shm/b', '/x\\', '/dev/shm/b']],
    ['lowerdir=/x\\\\:/dev/shm/b', ['/lowerdir', '/x\\', '/dev/shm/b', '/x\\\\']],
    ['', []],
  ])('mount data %j → %j', (data, paths) => expect(mountDataPaths(data)).toEqual(paths));

  test('overlay layers in a local volume\'s mount data are host paths (inline, docker volume create, services)', () => {
    const o = `lowerdir=${BASE}:/tmp/empty`;
    expect(volumeHostPaths({ Name: 'v', DriverOpts: { type: 'overlay', device: 'overlay', o } })).toContain(BASE);
    const inline = { Type: 'volume', Target: '/x', VolumeOptions: { DriverConfig: { Name: 'local', Options: { type: 'overlay', device: 'overlay', o } } } };
    expect(hostMountSources({ HostConfig: { Mounts: [inline] } })).toContain(BASE);
    expect(serviceMountSources({ TaskTemplate: { ContainerSpec: { Mounts: [inline] } } })).toContain(BASE);
    expect(() => refuseSecretsBaseMounts(volumeHostPaths({ DriverOpts: { type: 'overlay', o: `upperdir=${BASE}/x,workdir=/w` } }), [BASE])).toThrow(`the request mounts the host path ${BASE}/x`);
    expect(() => refuseSecretsBaseMounts(volumeHostPaths({ DriverOpts: { type: 'tmpfs', device: 'tmpfs', o: 'size=64m,uid=1000' } }), [BASE])).not.toThrow();
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
