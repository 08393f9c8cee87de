import { STATUS_CODES } from 'node:http';
import type { SwaggerTransform } from '@fastify/swagger';
import type { Access } from '../deps/auth.ts';

/**
 * What the OpenAPI document (/docs/json) says of each route beyond its own schema, derived from
 * what the route declares so the two cannot drift apart: who may call it (its `config.access`)
 * and that its problem responses are application/problem+json.
 */

/** The security schemes (components.securitySchemes, see app.ts) that admit each access level. */
function securityOf(access: Access): Record<string, string[]>[] {
  switch (access) {
    case 'public':
      return [];
    case 'user':
      return [{ bot: [] }, { admin: [] }, { miniApp: [] }];
    case 'bot':
      return [{ bot: [] }, { admin: [] }];
    case 'support':
    case 'admin':
      // Which operators' role is admin the document cannot say: the route's description does.
      return [{ admin: [] }, { operatorSession: [] }];
  }
}

const PROBLEM_REF = 'Problem';

/** A response declared as problemResponses() gives it: `{ $ref: 'Problem' }`. */
function isProblemRef(schema: unknown): boolean {
  return (
    typeof schema === 'object' &&
    schema !== null &&
    (schema as { $ref?: unknown }).$ref === PROBLEM_REF
  );
}

/** The route's schema as the document shows it: its security, and problems as problem+json. */
export const documentRoute: SwaggerTransform = ({ schema, url, route }) => {
  if (!schema || schema.hide) return { schema, url };
  const access = route.config?.access ?? 'public';
  const declared = (schema.response ?? {}) as Record<string, unknown>;
  const response = Object.fromEntries(
    Object.entries(declared).map(([status, entry]) => [
      status,
      isProblemRef(entry)
        ? {
            description: STATUS_CODES[Number(status)] ?? 'Problem',
            content: { 'application/problem+json': { schema: { $ref: PROBLEM_REF } } },
          }
        : entry,
    ]),
  );
  return {
    schema: {
      ...schema,
      security: securityOf(access),
      ...(schema.response === undefined ? {} : { response }),
    },
    url,
  };
};
