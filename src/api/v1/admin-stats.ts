import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { problemResponses } from '../../schemas/problem.ts';
import { adminStats, MAX_STATS_DAYS, statsRange } from '../../services/admin-stats.ts';

const Count = (description: string) => Type.Integer({ description });
const Fraction = (description: string) => Type.Union([Type.Number(), Type.Null()], { description });

const Stats = Type.Object({
  range: Type.Object({
    from: Type.String({ format: 'date', description: 'The first UTC day, inclusive' }),
    to: Type.String({ format: 'date', description: 'The last UTC day, inclusive' }),
    days: Type.Integer(),
  }),
  users: Type.Object({
    total: Count('Every user, whenever created'),
    new: Count('Users created in the range'),
    active: Count(
      'Users the bot last heard from on a day of the range (last_seen_at; one seen again later counts on that later day)',
    ),
  }),
  generations: Type.Object({
    total: Count('Generations accepted in the range'),
    by_status: Type.Record(Type.String(), Type.Integer(), {
      description:
        'queued, running, succeeded, failed, cancelled: how many of those accepted in the range are in each',
    }),
    by_model: Type.Array(
      Type.Object({
        model: Type.String(),
        total: Type.Integer(),
        succeeded: Type.Integer(),
        failed: Type.Integer(),
      }),
    ),
    success_rate: Fraction('succeeded / (succeeded + failed); null when none settled'),
    seconds_p50: Fraction(
      'Median seconds from acceptance to success, as percentile_cont over those seconds truncated to whole seconds (at most 1 s below the exact median); null when none succeeded',
    ),
    seconds_p95: Fraction('95th percentile of the same, computed the same way'),
  }),
  money: Type.Object({
    stars_received: Count("Sum of total_amount of the range's payments still paid (not refunded)"),
    payments: Count('How many such payments'),
    credits_sold: Count('Credits of topup entries'),
    credits_spent: Count('Generation charges minus generation refunds'),
    credits_refunded: Count('Credits taken back by payment refunds and referral clawbacks'),
    credits_given_free: Count('Bonuses, positive admin adjustments and referral bonuses'),
    free_generations_used: Count('Trial generations used in the range and not given back (since)'),
  }),
  referrals: Type.Object({
    new_referred_users: Count('Users created in the range with a referral code'),
    bonuses_paid: Count('Referral bonus entries'),
    bonus_credits: Count('Their credits'),
  }),
  daily: Type.Array(
    Type.Object({
      date: Type.String({ format: 'date' }),
      new_users: Type.Integer(),
      generations_succeeded: Type.Integer(),
      generations_failed: Type.Integer(),
      stars_received: Type.Integer(),
      credits_spent: Type.Integer(),
    }),
    {
      description:
        'One item per UTC day of the range, oldest first, days without activity included',
    },
  ),
});

/** Business statistics, for operators. */
export const adminStatsRoutes: FastifyPluginAsyncTypebox = async (app) => {
  app.get(
    '/admin/stats',
    {
      config: { access: 'support' },
      schema: {
        operationId: 'adminGetStats',
        summary: 'Business statistics over a range of UTC days, with a daily series',
        description:
          `Users, generations, money and referrals between two UTC days (both inclusive); by default the last 30 days up to today. ` +
          `At most ${MAX_STATS_DAYS} days; a malformed date, from after to or a longer range is 422. ` +
          'Credits are integers; only the success rate and the percentiles are fractions.',
        tags: ['admin'],
        querystring: Type.Object(
          {
            from: Type.Optional(
              Type.String({ maxLength: 10, description: 'The first UTC day, YYYY-MM-DD' }),
            ),
            to: Type.Optional(
              Type.String({
                maxLength: 10,
                description: 'The last UTC day, YYYY-MM-DD (inclusive)',
              }),
            ),
          },
          { additionalProperties: false },
        ),
        response: { 200: Stats, ...problemResponses(400, 401, 403, 422, 429) },
      },
    },
    async (request) => adminStats(app.deps.services.db, statsRange(request.query)),
  );
};
