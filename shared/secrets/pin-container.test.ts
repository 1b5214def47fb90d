import { describe, expect, test } from 'vitest';
import { classifyRequest } from '../docker/classify-request.js';
import { pinContainerTarget, pinQueryParam } from './pin-container.js';

const ID = 'a'.repeat(64);
const pin = (method: string, target: string) => pinContainerTarget(classifyRequest(method, target), target, ID);

describe('pinning a container reference to the id that was checked', () => {
  test.each([
    ['GET', '/containers/web/export', `/containers/${ID}/export`],
    ['GET', '/v1.41/containers/web/export', `/v1.41/containers/${ID}/export`],
    ['GET', '/v1.41/containers/w%65b/archive?path=/run/secrets/x', `/v1.41/containers/${ID}/archive?path=/run/secrets/x`],
    ['HEAD', '/containers/web/archive?path=%2Fetc', `/containers/${ID}/archive?path=%2Fetc`],
    ['POST', '/containers/a%2Fb/copy', `/containers/${ID}/copy`],
    ['POST', '/containers/3f2a/start', `/containers/${ID}/start`],
    ['POST', '/v1.45/containers/web/restart?t=1', `/v1.45/containers/${ID}/restart?t=1`],
    ['POST', '/commit?container=web&repo=r&tag=t', `/commit?container=${ID}&repo=r&tag=t`],
    ['POST', '/v1.41/commit?repo=r&container=web&cont%61iner=x&container+=y&c=1', `/v1.41/commit?container=${ID}&repo=r&container+=y&c=1`],
    ['POST', '/commit?repo=r', `/commit?container=${ID}&repo=r`],
    ['POST', '/v1.41/build?t=x&networkmode=container%3Aweb&networkmod%65=container:y', `/v1.41/build?networkmode=container%3A${ID}&t=x`],
  ])('%s %s → %s', (method, target, expected) => expect(pin(method, target)).toBe(expected));

  test('only a full id is forwarded', () => {
    expect(() => pinContainerTarget(classifyRequest('GET', '/containers/web/export'), '/containers/web/export', 'web')).toThrow(/did not give a container id/);
    expect(() => pinContainerTarget(classifyRequest('GET', '/containers/web/export'), '/containers/web/export', 'A'.repeat(64))).toThrow();
  });

  test('query keys are compared as Go decodes them', () => {
    expect(pinQueryParam('a=1&%63ontainer=x&&container=y', 'container', 'z')).toBe('container=z&a=1');
    expect(pinQueryParam('bad%zz=1', 'container', 'z')).toBe('container=z&bad%zz=1');
  });
});
