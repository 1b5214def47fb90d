/**
 * Serves the route table: match, authenticate, authorise, validate, run, answer.
 *
 * - Unknown path → 404, known path with another method → 405, both as `{"error": {code, message}}`.
 * - JSON bodies must be `application/json` and at most 1 MiB; text bodies (`body: 'text'`) at most 1 MiB.
 * - Errors: DrawbridgeError → its status and (when exposed) message; zod → 400 naming the field; anything else →
 *   500 "internal error" with the detail in the log only.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { z } from 'zod';
import { DrawbridgeError } from '../../shared/errors/drawbridge-error.js';
import { consoleErrors, FieldError } from '../errors.js';
import { isReply, RAW, type ApiRoute, type Principal } from './route.js';

const MAX_BODY = 1024 * 1024;

interface CompiledRoute {
  readonly route: ApiRoute;
  readonly re: RegExp;
  readonly names: readonly string[];
}

/** A request the router matched to a route, as far as it got: who sent it, once known. */
export interface RoutedRequest {
  readonly route: ApiRoute;
  readonly params: Readonly<Record<string, string>>;
  principal: Principal;
}

export interface RouterDeps {
  /** Who sent `req`, as the Console's state says now (called again once a body is in). */
  authenticate(req: IncomingMessage): Promise<Principal>;
  log(message: string, fields: Record<string, unknown>): void;
  /** Called once per request that matched a route, with the status it was answered (the Console's audit). */
  finished?(req: IncomingMessage, routed: RoutedRequest, status: number): void;
}

function compile(route: ApiRoute): CompiledRoute {
  const names: string[] = [];
  const pattern = route.path
    .split(/(\{\w+\})/)
    .map((part) => {
      const m = /^\{(\w+)\}$/.exec(part);
      if (!m) return part.replace(/[.*+?^$()|[\]\\]/g, '\\$&');
      names.push(m[1]!);
      return '([^/]+)';
    })
    .join('');
  return { route, re: new RegExp(`^${pattern}$`), names };
}

export function sendJson(res: ServerResponse, status: number, json: unknown, headers: Record<string, string> = {}): void {
  const body = JSON.stringify(json);
  res.writeHead(status, { 'Content-Type': 'application/json; charset=utf-8', 'Content-Length': Buffer.byteLength(body), 'Cache-Control': 'no-store', ...headers });
  res.end(body);
}

export function sendError(res: ServerResponse, err: DrawbridgeError): void {
  const field = err instanceof FieldError ? { field: err.field } : {};
  sendJson(res, err.status, { error: { code: err.code, message: err.expose ? err.message : 'internal error', ...field } });
}

function readBody(req: IncomingMessage): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      if (size > MAX_BODY) return; // already answered 413: drop the rest (the 413 closes the connection)
      size += c.length;
      if (size > MAX_BODY) {
        // Not req.destroy(): that resets the connection before the client can read the 413.
        chunks.length = 0;
        reject(consoleErrors.too_large(`the request body is over ${MAX_BODY} bytes`));
        return;
      }
      chunks.push(c);
    });
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

function zodToFieldError(error: z.ZodError, prefix: string): FieldError {
  const issue = error.issues[0]!;
  const path = issue.path.map(String).join('.');
  const message = issue.code === 'unrecognized_keys' ? `unknown field(s): ${issue.keys.join(', ')}` : issue.message;
  return new FieldError(path ? `${prefix}.${path}` : prefix, message);
}

function checkAccess(route: ApiRoute, principal: Principal): void {
  if (route.access === 'public') return;
  if (route.access === 'defender') {
    if (principal.kind !== 'defender') throw consoleErrors.forbidden('this endpoint is for enrolled Defenders (mTLS client certificate)');
    return;
  }
  if (principal.kind === 'anonymous') throw consoleErrors.unauthenticated('log in first: POST /api/v1/auth/login, then send Authorization: Bearer <token>');
  if (principal.kind !== 'user' || !route.access.includes(principal.role)) {
    throw consoleErrors.forbidden(`your role may not do this (needs ${route.access.join(' or ')})`);
  }
}

export function createRouter(routes: readonly ApiRoute[], deps: RouterDeps): (req: IncomingMessage, res: ServerResponse) => void {
  const compiled = routes.map(compile);
  const handle = async (req: IncomingMessage, res: ServerResponse, seen: { routed: RoutedRequest | null }): Promise<void> => {
    const url = new URL(req.url ?? '/', 'https://console');
    const matches = compiled.map((c) => ({ c, m: c.re.exec(url.pathname) })).filter((x) => x.m);
    if (matches.length === 0) throw consoleErrors.not_found(`no such endpoint: ${url.pathname}`);
    const hit = matches.find((x) => x.c.route.method === req.method);
    if (!hit) throw new DrawbridgeError('method_not_allowed', `${req.method} is not allowed on ${url.pathname} (allowed: ${matches.map((x) => x.c.route.method).join(', ')})`, 405);
    const { route } = hit.c;
    const params: Record<string, string> = {};
    hit.c.names.forEach((n, i) => {
      try {
        params[n] = decodeURIComponent(hit.m![i + 1]!);
      } catch {
        throw new FieldError(n, 'is not validly percent-encoded');
      }
    });
    const routed: RoutedRequest = { route, params, principal: { kind: 'anonymous' } };
    seen.routed = routed;
    let principal = await deps.authenticate(req);
    routed.principal = principal;
    checkAccess(route, principal);

    let query: unknown = {};
    if (route.query) {
      const parsed = route.query.safeParse(Object.fromEntries(url.searchParams));
      if (!parsed.success) throw zodToFieldError(parsed.error, 'query');
      query = parsed.data;
    }
    let body: unknown;
    if (route.body !== undefined) {
      const raw = await readBody(req);
      if (route.body === 'text') body = raw.toString('utf8');
      else {
        if (raw.length && !/^application\/json\b/i.test(req.headers['content-type'] ?? '')) throw consoleErrors.invalid_request('send the body as Content-Type: application/json');
        let json: unknown;
        try {
          json = raw.length ? JSON.parse(raw.toString('utf8')) : {};
        } catch {
          throw consoleErrors.invalid_request('the body is not valid JSON');
        }
        const parsed = route.body.safeParse(json);
        if (!parsed.success) throw zodToFieldError(parsed.error, 'body');
        body = parsed.data;
      }
      // Again, now that the body is in: a client may hold its body back for minutes, and a user deleted, disabled,
      // demoted or moved out of a group meanwhile must not act (or get a certificate) as they were when the headers came.
      principal = await deps.authenticate(req);
      routed.principal = principal;
      checkAccess(route, principal);
    }
    const result = await route.handler({ principal, params, body, query, req, res });
    if (result === RAW) return;
    if (isReply(result)) {
      if (result.text !== undefined) {
        res.writeHead(result.status, { 'Content-Type': result.contentType ?? 'text/plain; charset=utf-8', 'Cache-Control': 'no-store', ...result.headers });
        res.end(result.text);
      } else if (result.json !== undefined) sendJson(res, result.status, result.json, result.headers);
      else res.writeHead(result.status, result.headers).end();
      return;
    }
    sendJson(res, 200, result);
  };
  return (req, res) => {
    const seen: { routed: RoutedRequest | null } = { routed: null };
    const finished = (status: number): void => {
      if (seen.routed) deps.finished?.(req, seen.routed, status);
    };
    handle(req, res, seen).then(
      () => finished(res.statusCode),
      (err: unknown) => {
        if (res.headersSent) {
          res.destroy();
          finished(res.statusCode);
          return;
        }
        if (err instanceof DrawbridgeError) {
          if (err.status === 413) res.setHeader('Connection', 'close');
          if (err.status >= 500) deps.log('request failed', { path: req.url?.split('?')[0], error: err.message });
          sendError(res, err);
        } else {
          deps.log('request failed', { path: req.url?.split('?')[0], error: (err as Error).stack ?? String(err) });
          sendError(res, consoleErrors.internal('internal error'));
        }
        finished(res.statusCode);
      },
    );
  };
}
