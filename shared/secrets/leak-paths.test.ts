import { describe, expect, test } from 'vitest';
import { baseInHostShm, decideLeak, decideSharing, decideTop, hostIpcDenial, ipcModeOf, leakPathOf, pinSharedContainers, psShowsEnvironment, sharedContainers } from './leak-paths.js';
import { SECRET_LABELS } from './secret-labels.js';

const labels = (rules: string, allow = '') => ({ [SECRET_LABELS.rules]: rules, [SECRET_LABELS.allow]: allow, other: 'x' });

describe('leak paths', () => {
  test.each([
    ['container_commit', 'commit'],
    ['container_export', 'export'],
    ['container_archive', 'copy'],
    ['container_archive_head', 'copy'],
    ['container_copyfiles', 'copy'],
    ['container_inspect', null],
    ['container_extract', 'copy'],
    ['constructor', null],
  ])('%s → %s', (action, path) => expect(leakPathOf(action)).toBe(path));

  test.each([
    ['commit denied', 'container_commit', labels('db'), /The command 'container_commit' \(docker commit\) is denied: the container carries secrets injected by secret rule 'db', and it does not allow 'commit'/],
    ['export denied', 'container_export', labels('db', 'copy'), /'container_export' \(docker export\) is denied/],
    ['archive denied', 'container_archive', labels('db', 'commit,export'), /\(docker cp\) is denied/],
    ['archive HEAD denied', 'container_archive_head', labels('db'), /docker cp/],
    ['upload denied', 'container_extract', labels('db', 'commit,export'), /The command 'container_extract' \(docker cp into it\) is denied: .* it does not allow 'copy'/],
    ['several rules', 'container_commit', labels('db,tls'), /secret rule 'db', 'tls', and not every one of them allows 'commit'/],
  ])('%s', (_what, action, l, message) => {
    const d = decideLeak(action, l);
    expect(d.allowed).toBe(false);
    if (!d.allowed) expect(d.message).toMatch(message);
  });

  test.each([
    ['allowed by the rules', 'container_archive', labels('db', 'copy')],
    ['upload allowed by the rules', 'container_extract', labels('db', 'copy')],
    ['commit allowed', 'container_commit', labels('db', 'commit,copy')],
    ['unmarked', 'container_commit', { a: 'b' }],
    ['no labels', 'container_export', null],
    ['not a leak path', 'container_inspect', labels('db')],
  ])('allowed: %s', (_what, action, l) => expect(decideLeak(action, l).allowed).toBe(true));

  test.each([
    [{ HostConfig: { VolumesFrom: ['a', 'b:ro', 'c:rw'] } }, ['a', 'b', 'c']],
    [{ hostconfig: { volumesfrom: ['a'], pidmode: 'container:db' } }, ['a', 'db']],
    [{ HostConfig: { PidMode: 'host', IpcMode: 'host' } }, []],
    [{ HostConfig: { IpcMode: 'container:shm-owner' } }, ['shm-owner']],
    [{ HostConfig: { NetworkMode: 'container:db' } }, ['db']],
    [{ networkmode: 'container:db' }, ['db']], // top level, no HostConfig: dockerd before 27 reads it there
    [{ HostConfig: { NetworkMode: 'host' } }, []],
    [{ HostConfig: { NetworkMode: 'bridge' } }, []],
    [{ HostConfig: { IpcMode: 'container:', PidMode: 'container:', NetworkMode: 'container:' } }, []],
    [{}, []],
  ])('sharedContainers %j', (body, refs) => expect(sharedContainers(body)).toEqual(refs));

  test('sharing a marked container is denied unless copy is allowed', () => {
    expect(decideSharing('db1', labels('db'))).toMatchObject({ allowed: false, message: expect.stringMatching(/sharing the mounts or processes of 'db1' is denied/) });
    expect(decideSharing('db1', labels('db', 'copy')).allowed).toBe(true);
    expect(decideSharing('db1', {}).allowed).toBe(true);
  });
});

describe('sharing references, pinned', () => {
  const ID = (c: string) => c.repeat(64);
  test('VolumesFrom, PidMode, IpcMode, NetworkMode and Links (any letter case) are found and replaced by the checked ids', () => {
    const body = { Image: 'x', hostconfig: { volumesfrom: ['a:ro', 'b'], PIDMODE: 'container:c', ipcMode: 'container:f', networkMODE: 'container:g', links: ['/d:alias', 'e'] } };
    expect(sharedContainers(body)).toEqual(['a', 'b', 'c', 'f', 'g', 'd', 'e']);
    const ids = new Map([['a', ID('1')], ['b', ID('2')], ['c', ID('3')], ['d', ID('4')], ['e', ID('5')], ['f', ID('6')], ['g', ID('7')]]);
    expect(pinSharedContainers(body, ids)).toEqual({ Image: 'x', hostconfig: { volumesfrom: [`${ID('1')}:ro`, ID('2')], PIDMODE: `container:${ID('3')}`, ipcMode: `container:${ID('6')}`, networkMODE: `container:${ID('7')}`, links: [`${ID('4')}:alias`, `${ID('5')}:e`] } });
    expect(body.hostconfig.volumesfrom).toEqual(['a:ro', 'b']); // the input is not changed
  });

  test('a reference that was not checked is never forwarded', () => {
    expect(() => pinSharedContainers({ HostConfig: { VolumesFrom: ['a'] } }, new Map())).toThrow(/not checked/);
    expect(() => pinSharedContainers({ HostConfig: { VolumesFrom: ['a'] } }, new Map([['a', 'a']]))).toThrow(/not checked/);
  });

  test('VolumesFrom is split at the first colon, as dockerd does', () => {
    expect(sharedContainers({ HostConfig: { VolumesFrom: ['a:b:ro'] } })).toEqual(['a']);
  });
});

describe('docker top options', () => {
  test.each([
    ['', false],
    ['-ef', false],
    ['aux', false],
    ['-o pid,args', false],
    ['-o user,pid', false],
    ['-o pid,user,etime,args', false],
    ['--format pid,user', false],
    ['--format=pid,user', false],
    ['-eo pid,user,args', false],
    ['-e -o pid,user,args', false],
    ['axo pid,user,args', false],
    ['-f -o pid,user', false],
    ['--forest -ef', false],
    ['-ef --forest', false],
    ['-eLf', false],
    ['-elf', false],
    ['-ef  ', false],
    ['-u root', false],
    ['-x', false],
    // BSD e, or a UNIX -e in a line procps re-reads as BSD (a word it cannot parse as UNIX options)
    ['aux e', true],
    ['auxe', true],
    ['-ef e', true],
    ['-o pid,args e', true],
    ['e', true],
    ['-ex', true],
    ['-e -x', true],
    ['-x -e', true],
    ['-aex', true],
    ['-ewx', true],
    ['-eaux', true],
    ['-e -t', true],
    ['-ef -x', true],
    ['-ef -o pid,args', true], // two format options conflict: the BSD retry reads -ef as e + f
    ['-ey', true],
    ['-eo', true],
    ['-eo pid,args -x', true],
    // a word read as another option's value in one grammar and as options in the other
    ['-t -o e', true],
    ['-u e', true],
    ['-s e', true],
    ['-s -o pid,user', true],
    ['aux -o pid,user', true],
    ['-o', true],
    ['-o -ex', true],
    ['--cumulative', true],
    ['--sort etime', true],
  ])('%j shows the environment: %s', (args, shows) => expect(psShowsEnvironment(args)).toBe(shows));

  test('denied only for a container with env secrets, unless its rules allow copy', () => {
    const env = { [SECRET_LABELS.rules]: 'db', [SECRET_LABELS.env]: 'PW' };
    expect(decideTop('aux e', env)).toMatchObject({ allowed: false, message: expect.stringContaining("ps options that can show the environment ('aux e') is denied") });
    expect(decideTop('-ef', env).allowed).toBe(true);
    expect(decideTop('aux e', { ...env, [SECRET_LABELS.allow]: 'copy' }).allowed).toBe(true);
    expect(decideTop('aux e', { [SECRET_LABELS.rules]: 'db', [SECRET_LABELS.files]: 'f' }).allowed).toBe(true);
    expect(decideTop('aux e', {}).allowed).toBe(true);
  });
});

test('a checkpoint (a memory dump) is a copy path', () => {
  expect(leakPathOf('container_checkpoint_create')).toBe('copy');
  expect(decideLeak('container_checkpoint_create', { [SECRET_LABELS.rules]: 'db' })).toMatchObject({ allowed: false, message: expect.stringContaining('(docker checkpoint create) is denied') });
});

describe("the host's IPC namespace (its /dev/shm, where the secrets base is by default)", () => {
  test.each([
    [['/dev/shm/drawbridge-secrets-1'], '/dev/shm/drawbridge-secrets-1'],
    [['/srv/x', '/dev/shm/../shm/db'], '/dev/shm/../shm/db'],
    [['/dev/shm'], '/dev/shm'],
    [['/dev/shmx/db', '/run/drawbridge/secrets'], null],
  ])('bases %j: under /dev/shm → %s', (bases, found) => expect(baseInHostShm(bases)).toBe(found));

  test.each([
    [{ HostConfig: { IpcMode: 'host' } }, 'host'],
    [{ hostconfig: { ipcmode: 'container:db' } }, 'container:db'],
    [{ HostConfig: {} }, ''],
    [{ HostConfig: { IpcMode: 1 } }, ''],
    [[], ''],
  ])('IpcMode of %j → %j', (body, mode) => expect(ipcModeOf(body)).toBe(mode));

  test('refused only for the host mode while a base is under /dev/shm; the message names the way out', () => {
    expect(hostIpcDenial('host', '/dev/shm/db')).toContain("'--ipc host' is denied on this Defender: the host's /dev/shm would be mounted in the container, and it holds every container's secret files (/dev/shm/db); run without it, or move the Defender's --secrets-dir out of /dev/shm");
    expect(hostIpcDenial('host', '/dev/shm/db', 'x')).toContain("'--ipc container:x' ('x' has the host's IPC namespace) is denied");
    expect(hostIpcDenial('host', null)).toBeNull();
    expect(hostIpcDenial('private', '/dev/shm/db')).toBeNull();
    expect(hostIpcDenial('shareable', '/dev/shm/db', 'x')).toBeNull();
  });
});
