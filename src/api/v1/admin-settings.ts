import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { AppError } from '../../core/errors.ts';
import { operatorOf } from '../../deps/auth.ts';
import { problemResponses } from '../../schemas/problem.ts';
import { checkSettingValues, listSettings, updateSettings } from '../../services/settings.ts';

const SettingSource = Type.Union([Type.Literal('environment'), Type.Literal('override')]);

const Setting = Type.Object({
  key: Type.String({ description: 'The environment variable that gives its default' }),
  type: Type.Union(
    [
      Type.Literal('integer'),
      Type.Literal('boolean'),
      Type.Literal('string'),
      Type.Literal('stars_packages'),
      Type.Literal('provider_concurrency'),
      Type.Literal('telegram_ids'),
    ],
    {
      description:
        'integer; boolean; string; stars_packages: [{id, credits, stars}]; provider_concurrency: {"<provider>" | "*": jobs at once}; telegram_ids: [Telegram user id]',
    },
  ),
  value: Type.Unknown({ description: 'The value in force' }),
  default: Type.Unknown({ description: "The environment's value (used when no override is set)" }),
  source: SettingSource,
  bounds: Type.Object(
    {
      minimum: Type.Optional(Type.Number()),
      maximum: Type.Optional(Type.Number()),
      max_length: Type.Optional(Type.Integer()),
      nullable: Type.Optional(Type.Boolean()),
    },
    { description: 'What a value must be within' },
  ),
  meaning: Type.String(),
  updated_at: Type.Union([Type.Null(), Type.String({ format: 'date-time' })], {
    description: 'When the override was set; null: none',
  }),
  updated_by: Type.Union([Type.Null(), Type.String()], { description: 'Who set the override' }),
});

const Settings = Type.Object({ settings: Type.Array(Setting) });

const SettingChange = Type.Object({
  key: Type.String(),
  before: Type.Object({ value: Type.Unknown(), source: SettingSource }),
  after: Type.Object({ value: Type.Unknown(), source: SettingSource }),
});

/** The runtime settings registry (src/services/settings.ts) for operators. */
export const adminSettingsRoutes: FastifyPluginAsyncTypebox = async (app) => {
  app.get(
    '/admin/settings',
    {
      config: { access: 'support' },
      schema: {
        operationId: 'adminGetSettings',
        summary: 'Every runtime setting: value in force, default, source, bounds and meaning',
        description:
          "A setting's default is the environment's (.env.example); an operator's override wins " +
          'over it in every process within seconds of PATCH /admin/settings.',
        tags: ['admin'],
        response: { 200: Settings, ...problemResponses(401, 403, 429) },
      },
    },
    async () => ({ settings: await listSettings(app.deps.services) }),
  );

  app.patch(
    '/admin/settings',
    {
      config: { access: 'admin' },
      schema: {
        operationId: 'adminUpdateSettings',
        summary: 'Change runtime settings; every process applies them within seconds',
        description:
          'Each value is checked against its setting (type and bounds; 422 naming ' +
          '`values.<key>`); all are stored, audited (`settings.update`, before and after) and ' +
          'announced together, or none. `null` for a setting that cannot be null removes the ' +
          "override: the environment's value applies again.",
        tags: ['admin'],
        body: Type.Object(
          {
            values: Type.Record(Type.String({ maxLength: 64 }), Type.Unknown(), {
              minProperties: 1,
              maxProperties: 32,
              description: 'Setting key → new value',
              examples: [{ TRIAL_GENERATIONS: 2, REFERRAL_PERCENT: 10 }],
            }),
            reason: Type.String({ minLength: 1, maxLength: 500, description: 'Why; audited' }),
          },
          { additionalProperties: false },
        ),
        response: {
          200: Type.Object({ changes: Type.Array(SettingChange), settings: Type.Array(Setting) }),
          ...problemResponses(401, 403, 422, 429),
        },
      },
    },
    async (request) => {
      const problems = checkSettingValues(request.body.values);
      if (problems.length > 0) {
        const errors = problems.map((problem) => ({
          field: `body.values.${problem.key}`,
          message: problem.message,
        }));
        throw new AppError(
          'validation_failed',
          errors.map((error) => `${error.field} ${error.message}`).join('; '),
          { errors },
        );
      }
      return updateSettings(
        app.deps.services,
        request.body.values,
        operatorOf(request),
        request.body.reason,
      );
    },
  );
};
