import { Type } from 'typebox';
import { exampleTelegramUser, exampleTrial } from './examples.ts';

/** Telegram user ids have at most 52 significant bits: a JS number holds them exactly. */
export const TelegramId = Type.Integer({
  minimum: 1,
  maximum: Number.MAX_SAFE_INTEGER,
  description: 'Telegram user id',
  examples: [exampleTelegramUser.telegram_id],
});

export const TelegramIdParams = Type.Object({ telegram_id: TelegramId });

export const Credits = Type.Integer({ description: 'An amount of credits (integer)' });

export const TrialStatus = Type.Object(
  {
    available: Type.Boolean({ description: 'Whether a free generation can be used now' }),
    used: Type.Integer({ minimum: 0 }),
    limit: Type.Integer({ minimum: 0 }),
    remaining: Type.Integer({ minimum: 0 }),
  },
  { examples: [exampleTrial] },
);
