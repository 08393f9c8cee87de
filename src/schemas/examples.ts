/**
 * The examples the OpenAPI document shows (see api/openapi-examples.ts): one Telegram user and
 * what it does, so the examples of different operations tell one story. The OpenAPI test checks
 * each against the schema it illustrates.
 */

/** A Telegram user as the Bot API describes it (the bot forwards its User object). */
export const exampleTelegramUser = {
  telegram_id: 6174829305,
  username: 'dilnoza_k',
  first_name: 'Dilnoza',
  last_name: 'Karimova',
  language_code: 'uz',
  is_premium: false,
};

export const exampleTrial = { available: false, used: 1, limit: 1, remaining: 0 };

export const exampleUserProfile = {
  ...exampleTelegramUser,
  created_at: '2026-11-20T17:42:11.035Z',
  updated_at: '2026-11-27T09:13:58.204Z',
  balance: 112,
  trial: exampleTrial,
  language: 'uz',
  preferences: { model: 'nano-banana', parameters: { 'nano-banana': { aspect_ratio: '16:9' } } },
  referral_code: 'K7QM3XPA',
  banned: null,
};

const GENERATION_ID = '0b7c6f2e-5d1a-4c3e-9f8a-2d6b1e4c7a90';

export const exampleGenerationRequest = {
  telegram_id: exampleTelegramUser.telegram_id,
  model: 'nano-banana',
  prompt: 'A snow leopard on a Tian Shan ridge at dawn, watercolour',
  parameters: { aspect_ratio: '16:9' },
  payment: 'auto',
};

/** A generation as it is accepted: charged and queued. */
export const exampleQueuedGeneration = {
  id: GENERATION_ID,
  telegram_id: exampleTelegramUser.telegram_id,
  model: exampleGenerationRequest.model,
  prompt: exampleGenerationRequest.prompt,
  parameters: exampleGenerationRequest.parameters,
  references: [],
  status: 'queued',
  payment: { method: 'credits', credits: 38, refunded: false },
  error: null,
  results: [],
  created_at: '2026-11-27T09:14:05.512Z',
  started_at: null,
  completed_at: null,
  deadline_at: '2026-11-27T09:24:05.512Z',
};

/** The same generation once its image is stored. */
export const exampleGeneration = {
  ...exampleQueuedGeneration,
  status: 'succeeded',
  results: [
    {
      position: 0,
      url: `/api/v1/generations/${GENERATION_ID}/images/0`,
      mime_type: 'image/png',
      width: 1344,
      height: 768,
      seed: 482913,
    },
  ],
  started_at: '2026-11-27T09:14:06.020Z',
  completed_at: '2026-11-27T09:14:19.877Z',
};

/** A package of the default STARS_PACKAGES, and the successful_payment of its invoice. */
export const exampleStarsPackage = {
  id: 'popular',
  title: '500 credits',
  credits: 500,
  stars: 300,
  currency: 'XTR',
  invoice_payload: 'stars:popular:500:300',
};

export const exampleStarsInvoiceLink = {
  package_id: exampleStarsPackage.id,
  credits: exampleStarsPackage.credits,
  stars: exampleStarsPackage.stars,
  currency: 'XTR',
  invoice_payload: exampleStarsPackage.invoice_payload,
  invoice_link: 'https://t.me/$Vq3dKm8sTAAAAAe0xW1pQ2rY',
};

export const exampleSuccessfulPayment = {
  telegram_id: exampleTelegramUser.telegram_id,
  telegram_payment_charge_id: 'stxVd3Wq8mK1rFh0pTzLq2nYc5uB7eJ4aXs9gR6oiN_Mw',
  provider_payment_charge_id: null,
  total_amount: 300,
  currency: 'XTR',
  invoice_payload: exampleStarsPackage.invoice_payload,
};

export const examplePayment = {
  payment_id: 4127,
  telegram_id: exampleTelegramUser.telegram_id,
  telegram_payment_charge_id: exampleSuccessfulPayment.telegram_payment_charge_id,
  package_id: exampleStarsPackage.id,
  credits: 500,
  stars: 300,
  status: 'paid',
  balance_after: 612,
  created_at: '2026-11-27T09:20:41.730Z',
  referral: null,
};

export const exampleLedgerEntry = {
  id: 90211,
  entry_no: 7,
  amount: 500,
  balance_after: 612,
  kind: 'topup',
  reference_type: 'payment',
  reference_id: '4127',
  reason: null,
  actor: 'bot:3f1c9a0b7d2e',
  created_at: examplePayment.created_at,
};

/** A model of the starting catalog (drizzle/0002_starting_catalog.sql). */
export const exampleModel = {
  key: 'nano-banana',
  kind: 'image',
  name: 'Nano Banana',
  description: 'Google Gemini 2.5 Flash Image: fast, follows prompts closely, strong at edits.',
  parameters: [
    {
      name: 'aspect_ratio',
      label: 'Aspect ratio',
      type: 'enum',
      values: ['1:1', '3:2', '2:3', '3:4', '4:3', '4:5', '5:4', '9:16', '16:9', '21:9'],
      default: '1:1',
    },
  ],
  max_prompt_length: 2000,
  max_references: 10,
  typical_seconds: 15,
  available: true,
  unavailable_reason: null,
  price_credits: 38,
  prices: [{ conditions: {}, credits: 38 }],
};
