import type { CatalogModel } from './api.ts';
import type { Preferences } from './context.ts';
import type { ConversationStore } from './store.ts';

/**
 * A generation being composed: the prompt (or the photo) the user sent, and the model and
 * parameters chosen on its settings card. It lives in the conversation store, named by the chat
 * and the message it answers, so any bot process can continue it.
 */
export interface Draft {
  chatId: number;
  /** The user's message (prompt or photo): the card replies to it, and so does the result. */
  messageId: number;
  prompt: string;
  /** Telegram file ids of the images to edit (nothing is uploaded before the user confirms). */
  references: string[];
  model: string;
  parameters: Record<string, string>;
  /** The card's message, edited in place; then the status message of the generation. */
  cardMessageId?: number;
  /** Set once submitted: a second tap of start answers "already started". */
  generationId?: string;
  /** A tool draft offers only tools (a photo sent without a caption). */
  tools?: boolean;
}

const DRAFT_TTL_SECONDS = 24 * 3600;

export class Drafts {
  constructor(private readonly store: ConversationStore) {}

  get(chatId: number, messageId: number): Promise<Draft | null> {
    return this.store.get<Draft>(`draft:${chatId}:${messageId}`);
  }

  save(draft: Draft): Promise<void> {
    return this.store.set(`draft:${draft.chatId}:${draft.messageId}`, draft, DRAFT_TTL_SECONDS);
  }

  /** The draft an album's messages share (the first message of the album names it). */
  async albumDraft(chatId: number, mediaGroupId: string): Promise<number | null> {
    return this.store.get<number>(`album:${chatId}:${mediaGroupId}`);
  }

  rememberAlbum(chatId: number, mediaGroupId: string, messageId: number): Promise<void> {
    return this.store.set(`album:${chatId}:${mediaGroupId}`, messageId, DRAFT_TTL_SECONDS);
  }
}

/**
 * The model a new draft starts with: the user's last choice if it fits and can be generated now,
 * else the first that does; when none can (no provider serves them now), the first that fits, so
 * the card still shows and a start is answered with why not.
 */
export function startingModel(
  catalog: readonly CatalogModel[],
  preferences: Preferences,
  needs: { references: number; tools: boolean },
): CatalogModel | undefined {
  const fits = (model: CatalogModel) =>
    isTool(model) === needs.tools && model.max_references >= needs.references;
  const offered = (model: CatalogModel) => fits(model) && model.available;
  const preferred = catalog.find((model) => model.key === preferences.model);
  if (preferred && offered(preferred)) return preferred;
  return catalog.find(offered) ?? catalog.find(fits);
}

/** Tools are catalog models of kind `tool` (upscale, watermark removal…). */
export function isTool(model: CatalogModel): boolean {
  return model.kind === 'tool';
}

/** The model's parameters: the user's remembered values where still allowed, else the defaults. */
export function startingParameters(
  model: CatalogModel,
  preferences: Preferences,
): Record<string, string> {
  const remembered = preferences.parameters?.[model.key] ?? {};
  return Object.fromEntries(
    model.parameters.map((parameter) => {
      const value = remembered[parameter.name];
      return [
        parameter.name,
        value !== undefined && parameter.values.includes(value) ? value : parameter.default,
      ];
    }),
  );
}
