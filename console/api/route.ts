/**
 * How a Console API route is declared: one object per route, collected into one table (api/routes.ts) that
 * serves requests and generates the OpenAPI document. Nothing else registers handlers.
 *
 * - `access` is checked before the handler runs: 'public', 'defender' (a Defender's mTLS client certificate), or
 *   the roles allowed (an API session token).
 * - `body` and `query` are zod schemas; invalid input → 400 naming the field. `body: 'text'` takes a text body
 *   (YAML import).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { z } from 'zod';

export type Role = 'admin' | 'operator' | 'auditor' | 'user';
export const ROLES: readonly Role[] = ['admin', 'operator', 'auditor', 'user'];

export type Principal =
  | { readonly kind: 'user'; readonly name: string; readonly role: Role; readonly groups: readonly string[]; readonly sessionHash: string; readonly sessionExpiresAt: string }
  | { readonly kind: 'defender'; readonly hostName: string; readonly serial: string }
  | { readonly kind: 'anonymous' };

export type Access = 'public' | 'defender' | readonly Role[];

export interface ApiRequest<B, Q> {
  readonly principal: Principal;
  readonly params: Readonly<Record<string, string>>;
  readonly body: B;
  readonly query: Q;
  readonly req: IncomingMessage;
  readonly res: ServerResponse;
}

/** A handler returns JSON (status 200), a Reply, or RAW when it wrote the response itself (streams). */
export interface Reply {
  readonly status: number;
  readonly json?: unknown;
  readonly text?: string;
  readonly contentType?: string;
  readonly headers?: Record<string, string>;
}
export const RAW = Symbol('raw');

export interface ApiRoute<B = unknown, Q = unknown> {
  readonly method: 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';
  readonly path: string; // OpenAPI template: /api/v1/users/{name}
  readonly summary: string;
  readonly tag: string;
  readonly access: Access;
  readonly body?: z.ZodType<B> | 'text';
  readonly query?: z.ZodType<Q>;
  handler(req: ApiRequest<B, Q>): Promise<unknown> | unknown;
}

/** Declares a route with its body and query types inferred from the schemas. */
export function route<BS extends z.ZodType | 'text' | undefined = undefined, QS extends z.ZodType | undefined = undefined>(
  r: Omit<ApiRoute, 'body' | 'query' | 'handler'> & {
    body?: BS;
    query?: QS;
    handler(req: ApiRequest<BS extends z.ZodType ? z.output<BS> : BS extends 'text' ? string : undefined, QS extends z.ZodType ? z.output<QS> : Record<string, never>>): Promise<unknown> | unknown;
  },
): ApiRoute {
  return r as unknown as ApiRoute;
}

export function created(json: unknown): Reply {
  return { status: 201, json };
}

export function noContent(): Reply {
  return { status: 204 };
}

export function isReply(v: unknown): v is Reply {
  return typeof v === 'object' && v !== null && 'status' in v && typeof (v as Reply).status === 'number' && Object.keys(v).every((k) => ['status', 'json', 'text', 'contentType', 'headers'].includes(k));
}

/** The address a request came from, without the IPv4-mapped prefix. */
export function peerAddress(remote: string | undefined): string | null {
  return remote ? remote.replace(/^::ffff:(?=\d+\.)/, '') : null;
}
