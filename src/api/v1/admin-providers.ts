import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { problemResponses } from '../../schemas/problem.ts';
import { listProviderStatus } from '../../services/provider-balances.ts';

const Nullable = <T extends Parameters<typeof Type.Union>[0][number]>(
  schema: T,
  description: string,
) => Type.Union([schema, Type.Null()], { description });

const ProviderStatus = Type.Object({
  provider: Type.String(),
  status: Type.Union(
    [Type.Literal('ok'), Type.Literal('low'), Type.Literal('unknown'), Type.Literal('error')],
    {
      description:
        'ok; low (below MIN_PROVIDER_BALANCE); unknown (no balance API, or not checked yet); error (the last check failed: see error, balance is the last one read)',
    },
  ),
  balance: Nullable(Type.Number(), 'The last balance read, in currency'),
  currency: Nullable(Type.String(), 'USD for WaveSpeed'),
  balance_at: Nullable(Type.String({ format: 'date-time' }), 'When the balance was read'),
  checked_at: Nullable(Type.String({ format: 'date-time' }), 'When it was last checked'),
  error: Nullable(Type.String(), 'Why the last check failed'),
  low_since: Nullable(
    Type.String({ format: 'date-time' }),
    'Since when the balance has been below the minimum',
  ),
  available: Type.Boolean({ description: 'Whether new generations may go to it now' }),
  unavailable_reason: Nullable(
    Type.String(),
    'Why not (generations answer 503 provider_unavailable)',
  ),
});

/** The image providers' accounts, for operators. */
export const adminProviderRoutes: FastifyPluginAsyncTypebox = async (app) => {
  app.get(
    '/admin/providers',
    {
      config: { access: 'support' },
      schema: {
        operationId: 'adminListProviders',
        summary: "The providers' balances and whether they take new generations",
        description:
          'Every provider this deployment has an account for, with its last balance check (the workers check about once a minute; ' +
          'Replicate has no balance API: unknown). Below MIN_PROVIDER_BALANCE a provider takes no new generations (503 provider_unavailable).',
        tags: ['admin'],
        response: {
          200: Type.Object({ providers: Type.Array(ProviderStatus) }),
          ...problemResponses(401, 403, 429),
        },
      },
    },
    async () => ({ providers: await listProviderStatus(app.deps.pipeline) }),
  );
};
