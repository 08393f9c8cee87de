import { randomUUID } from 'node:crypto';
import { sql } from 'drizzle-orm';
import type { FastifyInstance } from 'fastify';
import { expect } from 'vitest';
import type { Queryable } from '../../src/db/client.ts';
import { selectRows } from '../../src/db/rows.ts';
import type { ModelParameter, RouteInputs } from '../../src/db/schema/index.ts';
import { adminAuth, botAuth } from './app.ts';

export interface TestModel {
  key: string;
  id: number;
}

/**
 * A catalog model of the test's own, served by `provider` (a provider name of the test's own, so
 * no other test's worker takes its jobs). Default: an aspect_ratio parameter, 10 credits, 16:9
 * costs 15.
 */
export async function createTestModel(
  db: Queryable,
  options: {
    provider: string;
    parameters?: ModelParameter[];
    prices?: { conditions: Record<string, string>; credits: number }[];
    maxReferences?: number;
    maxPromptLength?: number;
    /** `tool`: works on one image (default `image`). */
    kind?: 'image' | 'tool';
    /** The provider's model (default `vendor/<key>`; a tool's has no separate edit model). */
    providerModel?: string;
    /** The first route's request shape, when not the default (`images`, a list). */
    shape?: Partial<TestRoute>;
    /** Routes after the first (failover), in order. */
    fallbacks?: (Partial<TestRoute> & { provider: string })[];
  },
): Promise<TestModel> {
  const key = `test-${randomUUID().slice(0, 12)}`;
  const parameters = options.parameters ?? [
    {
      name: 'aspect_ratio',
      label: 'Aspect ratio',
      type: 'enum',
      values: ['1:1', '16:9', '9:16'],
      default: '1:1',
    },
  ];
  const tool = options.kind === 'tool';
  const maxReferences = options.maxReferences ?? (tool ? 1 : 2);
  const [model] = await selectRows<{ id: string | number }>(
    db,
    sql`INSERT INTO model_catalog
          (key, kind, display_name, parameters, max_prompt_length, max_references)
        VALUES (${key}, ${options.kind ?? 'image'}, ${key},
                ${JSON.stringify(parameters)}::jsonb, ${options.maxPromptLength ?? 500},
                ${maxReferences})
        RETURNING id`,
  );
  const id = Number(model?.id);
  const first: TestRoute = {
    provider: options.provider,
    providerModel: options.providerModel ?? `vendor/${key}`,
    providerEditModel: tool ? null : `vendor/${key}/edit`,
    referenceField: tool ? 'image' : 'images',
    referenceArity: tool ? 'string' : 'array',
    maxReferences,
    inputs: {},
    editInputs: {},
    ...options.shape,
  };
  const routes = [first, ...(options.fallbacks ?? []).map((route) => ({ ...first, ...route }))];
  for (const [index, route] of routes.entries()) {
    await db.execute(
      sql`INSERT INTO model_routes (model_id, priority, provider, provider_model, provider_edit_model,
            reference_field, reference_arity, max_references, inputs, edit_inputs)
          VALUES (${id}, ${index + 1}, ${route.provider}, ${route.providerModel},
            ${route.providerEditModel}, ${route.referenceField}, ${route.referenceArity},
            ${route.maxReferences}, ${JSON.stringify(route.inputs)}::jsonb,
            ${JSON.stringify(route.editInputs)}::jsonb)`,
    );
  }
  for (const price of options.prices ?? [
    { conditions: {}, credits: 10 },
    { conditions: { aspect_ratio: '16:9' }, credits: 15 },
  ]) {
    await db.execute(
      sql`INSERT INTO model_prices (model_id, conditions, credits)
          VALUES (${id}, ${JSON.stringify(price.conditions)}::jsonb, ${price.credits})`,
    );
  }
  return { key, id };
}

/** One route of a test model (model_routes). */
export interface TestRoute {
  provider: string;
  providerModel: string;
  providerEditModel: string | null;
  referenceField: string | null;
  referenceArity: 'string' | 'array';
  maxReferences: number;
  inputs: RouteInputs;
  editInputs: RouteInputs;
}

/** A synced user holding `credits`. */
export async function userWithCredits(
  app: FastifyInstance,
  telegramId: number,
  credits: number,
): Promise<void> {
  const synced = await app.inject({
    method: 'POST',
    url: '/api/v1/users/sync',
    headers: botAuth,
    payload: { telegram_id: telegramId },
  });
  expect(synced.statusCode).toBeLessThan(300);
  if (credits > 0) {
    const credited = await app.inject({
      method: 'POST',
      url: `/api/v1/admin/users/${telegramId}/credits`,
      headers: adminAuth,
      payload: { amount: credits, reason: 'test' },
    });
    expect(credited.statusCode, credited.body).toBeLessThan(300);
  }
}

export function submit(
  app: FastifyInstance,
  payload: Record<string, unknown>,
  headers: Record<string, string> = {},
) {
  return app.inject({
    method: 'POST',
    url: '/api/v1/generations',
    headers: { ...botAuth, ...headers },
    payload,
  });
}

export async function balanceOf(app: FastifyInstance, telegramId: number): Promise<number> {
  const response = await app.inject({
    method: 'GET',
    url: `/api/v1/users/${telegramId}/balance`,
    headers: botAuth,
  });
  return response.json().balance;
}

export async function generation(app: FastifyInstance, id: string) {
  const response = await app.inject({
    method: 'GET',
    url: `/api/v1/generations/${id}`,
    headers: botAuth,
  });
  expect(response.statusCode, response.body).toBe(200);
  return response.json();
}

/** Polls `read` until `done` holds (or fails after `timeoutMs`), answering the last value. */
export async function waitFor<T>(
  read: () => Promise<T>,
  done: (value: NoInfer<T>) => boolean,
  timeoutMs = 15_000,
): Promise<T> {
  const started = Date.now();
  for (;;) {
    const value = await read();
    if (done(value)) return value;
    if (Date.now() - started > timeoutMs) {
      throw new Error(`timed out waiting; last value: ${JSON.stringify(value)}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** Ledger entries that pay for or give back a generation. */
export async function entriesFor(db: Queryable, generationId: string) {
  return selectRows<{ kind: string; amount: number }>(
    db,
    sql`SELECT kind, amount FROM ledger_entries
        WHERE reference_type = 'generation' AND reference_id = ${generationId} ORDER BY id`,
  );
}
