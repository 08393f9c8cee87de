import { Type } from 'typebox';

/** RFC 9457 problem details, as every error of this API is rendered. */
export const Problem = Type.Object(
  {
    type: Type.String({ description: 'URI naming the kind of problem' }),
    title: Type.String(),
    status: Type.Integer(),
    detail: Type.Optional(Type.String()),
    instance: Type.Optional(Type.String({ description: 'The path of the request' })),
    code: Type.String({ description: 'Stable machine-readable code, e.g. user_not_found' }),
    requestId: Type.String({ description: 'The X-Request-ID of the request' }),
    errors: Type.Optional(
      Type.Array(Type.Object({ field: Type.String(), message: Type.String() }), {
        description: 'For validation_failed: each bad field and what is wrong with it',
      }),
    ),
  },
  { $id: 'Problem', additionalProperties: true },
);

export const problemRef = Type.Ref('Problem');

/** Standard error responses for a route's schema, so the OpenAPI document lists them. */
export function problemResponses(...statuses: number[]): Record<number, typeof problemRef> {
  return Object.fromEntries(statuses.map((status) => [status, problemRef]));
}
