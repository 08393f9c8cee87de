import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { exampleModel } from '../../schemas/examples.ts';
import { problemResponses } from '../../schemas/problem.ts';
import { listModelsWithAvailability } from '../../services/catalog.ts';

const CatalogModel = Type.Object(
  {
    key: Type.String({ description: 'The id to generate with' }),
    kind: Type.Union([Type.Literal('image'), Type.Literal('tool')], {
      description:
        'image: draws from a prompt (reference images optional, to edit); tool: works on exactly one image (references), the prompt may be empty',
    }),
    name: Type.String(),
    description: Type.String(),
    parameters: Type.Array(
      Type.Object({
        name: Type.String(),
        label: Type.String(),
        type: Type.Literal('enum'),
        values: Type.Array(Type.String()),
        default: Type.String(),
      }),
      {
        description:
          'Allowed parameters (aspect ratio, size, resolution, quality…) and their values',
      },
    ),
    max_prompt_length: Type.Integer(),
    max_references: Type.Integer({ description: 'Reference images accepted; 0 = text only' }),
    typical_seconds: Type.Union([Type.Integer(), Type.Null()]),
    available: Type.Boolean({
      description:
        'Whether a generation can be started now: some provider that serves it is configured, not failing and above its minimum balance',
    }),
    unavailable_reason: Type.Union(
      [
        Type.Literal('no_account'),
        Type.Literal('failing'),
        Type.Literal('low_balance'),
        Type.Null(),
      ],
      {
        description:
          'Why not, when not available: no_account (no provider of it is configured here), failing (its providers keep failing now), low_balance (their balance is below MIN_PROVIDER_BALANCE)',
      },
    ),
    price_credits: Type.Integer({ description: 'Credits per image with default parameters' }),
    prices: Type.Array(
      Type.Object({
        conditions: Type.Record(Type.String(), Type.String(), {
          description: 'Parameter values this price applies to; {} = any',
        }),
        credits: Type.Integer(),
      }),
      { description: 'Every current price; the most specific matching one applies' },
    ),
  },
  { examples: [exampleModel] },
);

export const modelRoutes: FastifyPluginAsyncTypebox = async (app) => {
  app.get(
    '/models',
    {
      schema: {
        operationId: 'listModels',
        summary: 'Active models with their current prices, allowed parameters and availability',
        tags: ['catalog'],
        response: {
          200: Type.Object({ models: Type.Array(CatalogModel) }),
          ...problemResponses(429),
        },
      },
    },
    async () => ({ models: await listModelsWithAvailability(app.deps.pipeline) }),
  );
};
