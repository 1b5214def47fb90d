/** Local users: admins manage them; everyone else sees only themselves (through /auth/me). */
import { z } from 'zod';
import type { ConsoleContext } from '../context.js';
import { consoleErrors } from '../errors.js';
import { endLogins } from '../auth/end-logins.js';
import { groupList, password, role, userName } from '../auth/user-store.js';
import { revokeCertsAfterUserChange } from '../certs/certificate-register.js';
import { decodeCursor, page, pageQuery } from './pagination.js';
import { created, noContent, route } from './route.js';


export function userRoutes(ctx: ConsoleContext) {
  return [
    route({
      method: 'GET', path: '/api/v1/users', tag: 'users', access: ['admin'],
      summary: 'List users (paginated)', query: pageQuery,
      handler({ query }) {
        return page(ctx.users.list(query.limit, decodeCursor(query.cursor)), query.limit, (u) => u.name);
      },
    }),
    route({
      method: 'POST', path: '/api/v1/users', tag: 'users', access: ['admin'],
      summary: 'Create a local user',
      body: z.strictObject({ name: userName, password, role: role.default('user'), groups: groupList.default([]) }),
      async handler({ body }) {
        return created(await ctx.users.create(body));
      },
    }),
    route({
      method: 'GET', path: '/api/v1/users/{name}', tag: 'users', access: ['admin'],
      summary: 'One user',
      handler({ params }) {
        const user = ctx.users.get(params.name!);
        if (!user) throw consoleErrors.not_found(`no user named '${params.name}'`);
        return user;
      },
    }),
    route({
      method: 'PATCH', path: '/api/v1/users/{name}', tag: 'users', access: ['admin'],
      summary: 'Change a user\'s password, role, groups or disabled flag (changing any of them ends their sessions and OAuth logins; changing groups or disabling also revokes their certificates, which carry the old groups)',
      body: z.strictObject({ password: password.optional(), role: role.optional(), groups: groupList.optional(), disabled: z.boolean().optional() }),
      async handler({ params, body }) {
        const before = ctx.users.get(params.name!);
        const user = await ctx.users.update(params.name!, body);
        if (body.role !== undefined || body.groups !== undefined || body.disabled || body.password !== undefined) endLogins(ctx, user.name);
        if (before) revokeCertsAfterUserChange(ctx, before, user);
        return user;
      },
    }),
    route({
      method: 'DELETE', path: '/api/v1/users/{name}', tag: 'users', access: ['admin'],
      summary: 'Delete a user (their sessions end and their certificates are revoked)',
      handler({ params }) {
        const before = ctx.users.get(params.name!);
        ctx.users.delete(params.name!);
        endLogins(ctx, params.name!);
        if (before) revokeCertsAfterUserChange(ctx, before, null);
        return noContent();
      },
    }),
  ];
}
