import { sql } from 'drizzle-orm';
import { AppError } from '../core/errors.ts';
import type { Queryable } from '../db/client.ts';
import { isoTimeText, selectRows } from '../db/rows.ts';
import type { ServiceContext } from './context.ts';
import { generationCursor } from './cursor.ts';
import type { Reference } from './generation-input.ts';
import { userNotFound } from './users.ts';

/**
 * How a generation is seen: a row of generation_requests with its user, model, references and
 * results; by id, and the user's, all or the active ones.
 */

export type PaymentMethod = 'credits' | 'trial';

export interface GenerationView {
  id: string;
  telegram_id: number;
  model: string;
  prompt: string;
  parameters: Record<string, string>;
  references: Reference[];
  status: 'queued' | 'running' | 'succeeded' | 'failed' | 'cancelled';
  payment: { method: PaymentMethod; credits: number; refunded: boolean };
  error: { code: string; message: string | null } | null;
  results: GenerationResultView[];
  created_at: string;
  started_at: string | null;
  completed_at: string | null;
  deadline_at: string | null;
}

export interface GenerationResultView {
  position: number;
  url: string;
  mime_type: string;
  width: number | null;
  height: number | null;
  seed: number | null;
}

async function userIdOf(db: Queryable, telegramId: number): Promise<number> {
  const [row] = await selectRows<{ id: string | number }>(
    db,
    sql`SELECT id FROM users WHERE telegram_id = ${telegramId}`,
  );
  if (!row) throw userNotFound(telegramId);
  return Number(row.id);
}

export interface GenerationRow {
  id: string;
  telegram_id: string | number;
  model: string;
  prompt: string;
  parameters: Record<string, string>;
  references: Reference[] | null;
  status: GenerationView['status'];
  payment_method: PaymentMethod;
  price_credits: number;
  refunded: boolean;
  error_code: string | null;
  error_message: string | null;
  results: (Omit<GenerationResultView, 'url'> & { url: string | null; stored: boolean })[] | null;
  created_at: string;
  started_at: string | null;
  completed_at: string | null;
  deadline_at: string | null;
  /** created_at to the microsecond, for the keyset cursor. */
  cursor_at: string;
}

export const generationColumns =
  sql.raw(`g.id, u.telegram_id, m.key AS model, g.prompt, g.parameters,
  (SELECT json_agg(json_build_object('kind', r.kind, 'value', r.value) ORDER BY r.position)
   FROM generation_references r WHERE r.request_id = g.id) AS "references",
  g.status, g.payment_method, g.price_credits,
  (g.refund_entry_id IS NOT NULL OR EXISTS (
     SELECT 1 FROM trial_uses t WHERE t.generation_request_id = g.id AND t.returned_at IS NOT NULL)
  ) AS refunded,
  g.error_code, g.error_message,
  (SELECT json_agg(json_build_object('position', s.position, 'url', s.url,
                                     'stored', s.storage_path IS NOT NULL, 'mime_type', s.mime_type,
                                     'width', s.width, 'height', s.height, 'seed', s.seed)
                   ORDER BY s.position)
   FROM generation_results s WHERE s.request_id = g.id) AS results,
  ${isoTimeText('g.created_at')} AS created_at, ${isoTimeText('g.started_at')} AS started_at,
  ${isoTimeText('g.completed_at')} AS completed_at, ${isoTimeText('g.deadline_at')} AS deadline_at,
  to_char(g.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') AS cursor_at`);

export const generationSource = sql.raw(`generation_requests g
  JOIN users u ON u.id = g.user_id
  JOIN model_catalog m ON m.id = g.model_id`);

/** Where a stored image is served: by this API, under the generation's unguessable id. */
function storedImagePath(generationId: string, position: number): string {
  return `/api/v1/generations/${generationId}/images/${position}`;
}

export function toView(row: GenerationRow, publicBaseUrl: string | null): GenerationView {
  return {
    id: row.id,
    telegram_id: Number(row.telegram_id),
    model: row.model,
    prompt: row.prompt,
    parameters: row.parameters,
    references: row.references ?? [],
    status: row.status,
    payment: { method: row.payment_method, credits: row.price_credits, refunded: row.refunded },
    error: row.error_code ? { code: row.error_code, message: row.error_message } : null,
    results: (row.results ?? []).map((result) => ({
      position: result.position,
      url: result.stored
        ? `${publicBaseUrl ?? ''}${storedImagePath(row.id, result.position)}`
        : (result.url ?? ''),
      mime_type: result.mime_type,
      width: result.width,
      height: result.height,
      seed: result.seed === null ? null : Number(result.seed),
    })),
    created_at: row.created_at,
    started_at: row.started_at,
    completed_at: row.completed_at,
    deadline_at: row.deadline_at,
  };
}

export async function getGenerationById(ctx: ServiceContext, id: string): Promise<GenerationView> {
  const [row] = await selectRows<GenerationRow>(
    ctx.db,
    sql`SELECT ${generationColumns} FROM ${generationSource} WHERE g.id = ${id}`,
  );
  if (!row) {
    throw new AppError('generation_not_found', `No generation ${id}.`);
  }
  return toView(row, ctx.config.publicBaseUrl);
}

export interface GenerationPage {
  generations: GenerationView[];
  next_cursor: string | null;
}

/** The user's generations, newest first, by keyset on (created_at, id). */
export async function listGenerations(
  ctx: ServiceContext,
  telegramId: number,
  options: { limit: number; cursor?: string },
): Promise<GenerationPage> {
  return listGenerationsOfUser(ctx, await userIdOf(ctx.db, telegramId), options);
}

/** The same, for the user of this id (users.id). */
export async function listGenerationsOfUser(
  ctx: ServiceContext,
  userId: number,
  options: { limit: number; cursor?: string },
): Promise<GenerationPage> {
  const after = options.cursor === undefined ? null : generationCursor.decode(options.cursor);
  const rows = await selectRows<GenerationRow>(
    ctx.db,
    sql`SELECT ${generationColumns} FROM ${generationSource}
        WHERE g.user_id = ${userId}
          ${after ? sql`AND (g.created_at, g.id) < (${after.createdAt}::timestamptz, ${after.id}::uuid)` : sql``}
        ORDER BY g.created_at DESC, g.id DESC
        LIMIT ${options.limit + 1}`,
  );
  const page = rows.slice(0, options.limit);
  const last = page.at(-1);
  return {
    generations: page.map((row) => toView(row, ctx.config.publicBaseUrl)),
    next_cursor:
      rows.length > options.limit && last
        ? generationCursor.encode({ createdAt: last.cursor_at, id: last.id })
        : null,
  };
}

/** The user's queued and running generations, oldest first. */
export async function listActiveGenerations(
  ctx: ServiceContext,
  telegramId: number,
): Promise<GenerationView[]> {
  const userId = await userIdOf(ctx.db, telegramId);
  const rows = await selectRows<GenerationRow>(
    ctx.db,
    sql`SELECT ${generationColumns} FROM ${generationSource}
        WHERE g.user_id = ${userId} AND g.status IN ('queued', 'running')
        ORDER BY g.created_at, g.id`,
  );
  return rows.map((row) => toView(row, ctx.config.publicBaseUrl));
}
