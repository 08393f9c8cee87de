/**
 * The buttons under a delivered result, as the worker writes them and the bot reads them back:
 * callback_data `res:<action>:<generation id>` (at most 42 bytes; Telegram allows 64). One module
 * for both sides, so they never drift apart.
 */

export const resultActions = ['regenerate', 'edit', 'original'] as const;
export type ResultAction = (typeof resultActions)[number];

const CODES: Readonly<Record<ResultAction, string>> = {
  regenerate: 'r',
  edit: 'e',
  original: 'o',
};
const ACTIONS: ReadonlyMap<string, ResultAction> = new Map(
  resultActions.map((action) => [CODES[action], action]),
);

const PREFIX = 'res';
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** A button's callback_data: `res:r:<id>`, `res:e:<id>` or `res:o:<id>`. */
export function encodeResultAction(action: ResultAction, generationId: string): string {
  const id = generationId.toLowerCase();
  if (!UUID.test(id)) throw new Error(`not a generation id: ${generationId}`);
  return `${PREFIX}:${CODES[action]}:${id}`;
}

/** What a pressed button asks for; null for callback_data that is not a result action. */
export function decodeResultAction(
  data: string | undefined,
): { action: ResultAction; generationId: string } | null {
  if (data === undefined) return null;
  const [prefix, code, id, ...rest] = data.split(':');
  if (prefix !== PREFIX || rest.length > 0 || code === undefined || id === undefined) return null;
  const action = ACTIONS.get(code);
  if (!action || !UUID.test(id)) return null;
  return { action, generationId: id };
}

/** Matches every result action's callback_data (grammY: `bot.callbackQuery(RESULT_ACTION_DATA, …)`). */
export const RESULT_ACTION_DATA =
  /^res:[reo]:[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
