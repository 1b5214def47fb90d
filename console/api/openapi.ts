/** The OpenAPI 3.1 document, generated from the one route table (so it cannot drift from what is served). */
import { z } from 'zod';
import { route, type ApiRoute } from './route.js';

export function openApiDocument(routes: readonly ApiRoute[], version: string): unknown {
  const paths: Record<string, Record<string, unknown>> = {};
  for (const r of routes) {
    const params = [...r.path.matchAll(/\{(\w+)\}/g)].map((m) => ({ name: m[1], in: 'path', required: true, schema: { type: 'string' } }));
    const query = r.query ? Object.entries((z.toJSONSchema(r.query, { io: 'input' }) as { properties?: Record<string, unknown> }).properties ?? {}).map(([name, schema]) => ({ name, in: 'query', schema })) : [];
    const op: Record<string, unknown> = {
      summary: r.summary,
      tags: [r.tag],
      security: r.access === 'public' ? [] : r.access === 'defender' ? [{ defenderCertificate: [] }] : [{ bearer: [] }],
      ...(r.access !== 'public' && r.access !== 'defender' ? { 'x-roles': r.access } : {}),
      parameters: [...params, ...query],
      responses: { default: { description: 'Success, or `{"error": {"code", "message", "field"?}}`' } },
    };
    if (r.body === 'text') op.requestBody = { content: { 'text/yaml': { schema: { type: 'string' } } } };
    else if (r.body) op.requestBody = { required: true, content: { 'application/json': { schema: z.toJSONSchema(r.body, { io: 'input', unrepresentable: 'any' }) } } };
    (paths[r.path] ??= {})[r.method.toLowerCase()] = op;
  }
  return {
    openapi: '3.1.0',
    info: { title: 'Drawbridge Console API', version },
    components: {
      securitySchemes: {
        bearer: { type: 'http', scheme: 'bearer', description: 'POST /api/v1/auth/login' },
        defenderCertificate: { type: 'mutualTLS', description: "An enrolled Defender's client certificate" },
      },
    },
    paths,
  };
}

export function openApiRoute(all: () => readonly ApiRoute[], version: string): ApiRoute {
  return route({
    method: 'GET', path: '/api/v1/openapi.json', tag: 'meta', access: 'public', summary: 'This document',
    handler: () => openApiDocument(all(), version),
  });
}
