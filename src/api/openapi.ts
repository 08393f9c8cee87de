import { STATUS_CODES } from 'node:http';
import type { SwaggerTransform } from '@fastify/swagger';
import { type ErrorCode, errorCodes } from '../core/error-codes.ts';
import { PROBLEM_MEDIA_TYPE } from '../core/problem.ts';
import type { Access } from '../deps/auth.ts';
import { exampleTelegramUser } from '../schemas/examples.ts';
import { Problem } from '../schemas/problem.ts';
import { userNotFound } from '../services/users.ts';
import { exampleOf, type RefResolver } from './openapi-examples.ts';

/**
 * What the OpenAPI document (/docs/json) says of each route beyond its own schema, derived from
 * what the route declares so the two cannot drift apart: who may call it (its `config.access`),
 * a name for every response, examples of its body and answers, and that its problem responses are
 * application/problem+json with an example of each.
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

const resolveRef: RefResolver = (ref) => (ref === PROBLEM_REF ? Problem : null);

type Schema = Record<string, unknown>;

function isSchema(value: unknown): value is Schema {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** A response declared as problemResponses() gives it: `{ $ref: 'Problem' }`. */
function isProblemRef(schema: unknown): boolean {
  return isSchema(schema) && schema.$ref === PROBLEM_REF;
}

/** The code shown as the example of a problem status: the commonest answer of that status. */
const exampleCodes: Partial<Record<number, ErrorCode>> = {
  400: 'invalid_cursor',
  401: 'unauthorized',
  402: 'insufficient_credits',
  403: 'forbidden',
  404: 'not_found',
  409: 'idempotency_key_reused',
  413: 'payload_too_large',
  415: 'unsupported_media_type',
  422: 'validation_failed',
  429: 'rate_limited',
  503: 'database_unavailable',
};

/** Details as the API words them (see where each code is raised). */
const exampleDetails: Partial<Record<ErrorCode, string>> = {
  bad_request: "Body is not valid JSON but content-type is set to 'application/json'",
  payload_too_large: 'Request body is too large',
  unsupported_media_type:
    'The body must be JSON: send it with Content-Type: application/json (not text/plain).',
  invalid_cursor:
    'cursor is not a next_cursor this API gave: pass back the next_cursor of the previous page, or leave it out for the first page.',
  unauthorized: 'This endpoint needs an Authorization header.',
  insufficient_credits: 'This needs 5 credits; the balance is 3.',
  forbidden: 'A Mini App user can only act for its own telegram_id.',
  idempotency_key_reused:
    'This Idempotency-Key was used for a different request; use a new key for a new request.',
  user_not_found: userNotFound(exampleTelegramUser.telegram_id).message,
  generation_not_found: 'No generation 0b7c6f2e-5d1a-4c3e-9f8a-2d6b1e4c7a90.',
  rate_limited: 'Rate limit of 120 requests per 60 s exceeded; retry in 17 s.',
  database_unavailable: 'The database cannot be reached right now; retry in a few seconds.',
};

/** The first field a route reads, as validation errors name it (`body.prompt`, `params.id`). */
function firstField(schema: Schema): { field: string; message: string } | null {
  for (const part of ['params', 'body', 'querystring'] as const) {
    const properties = isSchema(schema[part]) ? (schema[part] as Schema).properties : undefined;
    if (!isSchema(properties)) continue;
    const [name, property] = Object.entries(properties)[0] ?? [];
    if (name === undefined || !isSchema(property)) continue;
    const type = typeof property.type === 'string' ? property.type : 'string';
    return { field: `${part}.${name}`, message: `must be ${type}` };
  }
  return null;
}

/** What every route that reads a JSON body may answer before (or as) it reads it. */
const BODY_PROBLEMS = [400, 413, 415, 422] as const;

/** A 404's example: what the route's path names is not found (its last parameter's thing). */
const notFoundByParameter: Partial<Record<string, ErrorCode>> = {
  telegram_id: 'user_not_found',
  id: 'generation_not_found',
  position: 'image_not_found',
  key: 'model_not_found',
  charge_id: 'payment_not_found',
  broadcast_id: 'broadcast_not_found',
  provider: 'provider_not_found',
};

function notFoundCode(url: string, schema: Schema): ErrorCode | undefined {
  const name = [...url.matchAll(/:(\w+)/g)].at(-1)?.[1];
  if (name !== undefined) return notFoundByParameter[name];
  // A route that names its user in the body (a quote, a generation, a payment).
  const body = isSchema(schema.body) ? schema.body.properties : undefined;
  return isSchema(body) && 'telegram_id' in body ? 'user_not_found' : undefined;
}

/** The route's path as a request to it has it: each parameter replaced by its example. */
function examplePath(url: string, schema: Schema): string {
  const params = isSchema(schema.params) ? schema.params.properties : undefined;
  return url.replaceAll(/:(\w+)/g, (_, name: string) => {
    const property = isSchema(params) ? params[name] : undefined;
    return encodeURIComponent(String(exampleOf(property, resolveRef) ?? name));
  });
}

function problemExample(status: number, url: string, schema: Schema): Record<string, unknown> {
  const code =
    (status === 400 && schema.body !== undefined ? 'bad_request' : undefined) ??
    (status === 404 ? notFoundCode(url, schema) : undefined) ??
    exampleCodes[status] ??
    (Object.entries(errorCodes).find(([, entry]) => entry.status === status)?.[0] as
      | ErrorCode
      | undefined) ??
    'bad_request';
  const field = code === 'validation_failed' ? firstField(schema) : null;
  const errors = field ? [field] : [];
  const detail = field
    ? `${field.field} ${field.message}`
    : (exampleDetails[code] ?? errorCodes[code].title);
  return {
    type: `urn:problem:${code}`,
    title: errorCodes[code].title,
    status,
    detail,
    instance: examplePath(url, schema),
    code,
    requestId: '7d3f9a52-1c4e-4b8a-a0f6-93e2c5b71d08',
    ...(code === 'validation_failed' ? { errors } : {}),
  };
}

/** A success response: its own description or its status's name, and an example. */
function successResponse(status: number, declared: unknown): unknown {
  if (!isSchema(declared)) return declared;
  const name = typeof declared.description === 'string' ? declared.description : undefined;
  if (isSchema(declared.content)) {
    return { ...declared, description: name ?? STATUS_CODES[status] ?? 'Response' };
  }
  return {
    ...declared,
    'x-response-description': name ?? STATUS_CODES[status] ?? 'Response',
    examples: [exampleOf(declared, resolveRef)],
  };
}

/** The route's schema as the document shows it: security, named responses, examples. */
export const documentRoute: SwaggerTransform = ({ schema, url, route }) => {
  if (!schema || schema.hide) return { schema, url };
  const access = route.config?.access ?? 'public';
  const declared = (schema.response ?? {}) as Record<string, unknown>;
  const statuses = Object.keys(declared);
  if (schema.body !== undefined) {
    for (const status of BODY_PROBLEMS) if (!(status in declared)) statuses.push(String(status));
  }
  const problem = { $ref: PROBLEM_REF };
  const response = Object.fromEntries(
    statuses
      .sort()
      .map((status) => [status, declared[status] ?? problem] as const)
      .map(([status, entry]) => [
        status,
        isProblemRef(entry)
          ? {
              description: STATUS_CODES[Number(status)] ?? 'Problem',
              content: {
                [PROBLEM_MEDIA_TYPE]: {
                  schema: { $ref: PROBLEM_REF },
                  example: problemExample(Number(status), url, schema as Schema),
                },
              },
            }
          : successResponse(Number(status), entry),
      ]),
  );
  // A body with examples of several senders (the providers' reports) keeps them all.
  const body =
    isSchema(schema.body) &&
    !(Array.isArray(schema.body.examples) && schema.body.examples.length > 1)
      ? { body: { ...schema.body, examples: [exampleOf(schema.body, resolveRef)] } }
      : {};
  return {
    schema: {
      ...schema,
      ...body,
      // A route that checks a credential of its own (Telegram's webhook secret) declares it.
      security: schema.security ?? securityOf(access),
      ...(schema.response === undefined ? {} : { response }),
    },
    url,
  };
};
