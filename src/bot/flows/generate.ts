import { Composer, InlineKeyboard } from 'grammy';
import type { Message } from 'grammy/types';
import { escapeHtml } from '../../locales/index.ts';
import type { CatalogModel } from '../api.ts';
import type { BotContext } from '../context.ts';
import { type Draft, Drafts, isTool, startingModel, startingParameters } from '../drafts.ts';
import { acknowledge, explainFailure, html } from '../replies.ts';

/**
 * From a prompt (or a photo) to an accepted generation: a settings card replies to the user's
 * message with the model, the parameters that model takes (each a menu of its values) and a start
 * button showing the price. Start submits once per draft: its Idempotency-Key is the draft's, so a
 * redelivered update or a double tap never charges twice.
 */
export const generateFlow = new Composer<BotContext>();

const drafts = (ctx: BotContext) => new Drafts(ctx.services.store);

/** A pending "✏️ edit": the next prompt in this chat edits this image. */
export const pendingEditKey = (chatId: number) => `edit:${chatId}`;

generateFlow.on('message:text', async (ctx, next) => {
  if (ctx.message.text.startsWith('/')) return next();
  const pending = await ctx.services.store.get<string>(pendingEditKey(ctx.chat.id));
  if (pending) await ctx.services.store.delete(pendingEditKey(ctx.chat.id));
  await startDraft(ctx, ctx.message, ctx.message.text, pending ? [pending] : []);
});

generateFlow.on(['message:photo', 'message:document'], async (ctx, next) => {
  const fileId = imageFileId(ctx.message);
  if (!fileId) return next();
  const caption = ctx.message.caption?.trim() ?? '';
  const group = ctx.message.media_group_id;
  if (group) {
    const first = await drafts(ctx).albumDraft(ctx.chat.id, group);
    const draft = first === null ? null : await drafts(ctx).get(ctx.chat.id, first);
    if (draft) {
      draft.references.push(fileId);
      if (caption !== '' && draft.prompt === '') {
        draft.prompt = caption;
        draft.tools = false;
      }
      await refreshDraftModel(ctx, draft);
      await drafts(ctx).save(draft);
      await showCard(ctx, draft);
      return;
    }
    await drafts(ctx).rememberAlbum(ctx.chat.id, group, ctx.message.message_id);
  }
  await startDraft(ctx, ctx.message, caption, [fileId], caption === '' && !group);
});

/** The largest size of a photo, or an image sent as a file. */
function imageFileId(message: Message): string | null {
  if (message.photo && message.photo.length > 0) return message.photo.at(-1)?.file_id ?? null;
  if (message.document?.mime_type?.startsWith('image/')) return message.document.file_id;
  return null;
}

async function startDraft(
  ctx: BotContext,
  message: Message,
  prompt: string,
  references: string[],
  tools = false,
): Promise<void> {
  if (!ctx.chat) return;
  try {
    const catalog = await ctx.services.api.catalog();
    const preferences = ctx.profile?.preferences ?? {};
    const model = startingModel(catalog, preferences, { references: references.length, tools });
    if (!model) {
      await ctx.reply(ctx.t(tools ? 'generate-needs-image' : 'generate-ask-prompt'), html);
      return;
    }
    const draft: Draft = {
      chatId: ctx.chat.id,
      messageId: message.message_id,
      prompt: prompt.trim(),
      references,
      model: model.key,
      parameters: startingParameters(model, preferences),
      tools,
    };
    await drafts(ctx).save(draft);
    await showCard(ctx, draft, catalog);
  } catch (error) {
    await explainFailure(ctx, error);
  }
}

/** After an album grew: the model must still take that many images. */
async function refreshDraftModel(ctx: BotContext, draft: Draft): Promise<void> {
  const catalog = await ctx.services.api.catalog();
  const current = catalog.find((model) => model.key === draft.model);
  if (current && current.max_references >= draft.references.length && !isTool(current)) return;
  const model = startingModel(catalog, ctx.profile?.preferences ?? {}, {
    references: draft.references.length,
    tools: draft.tools ?? false,
  });
  if (model) {
    draft.model = model.key;
    draft.parameters = startingParameters(model, ctx.profile?.preferences ?? {});
  }
}

function durationText(ctx: BotContext, model: CatalogModel): string {
  return model.typical_seconds === null
    ? ctx.t('duration-unknown')
    : ctx.t('duration-seconds', { seconds: model.typical_seconds });
}

/** Sends the card, or edits it in place once it exists. */
async function showCard(ctx: BotContext, draft: Draft, known?: CatalogModel[]): Promise<void> {
  if (!ctx.from) return;
  const catalog = known ?? (await ctx.services.api.catalog());
  const model = catalog.find((candidate) => candidate.key === draft.model);
  if (!model) {
    await ctx.reply(ctx.t('generate-draft-expired'), html);
    return;
  }
  if (draft.prompt.length > model.max_prompt_length) {
    await ctx.reply(ctx.t('generate-prompt-too-long', { max: model.max_prompt_length }), html);
    return;
  }
  const quote = await ctx.services.api.quote({
    telegram_id: ctx.from.id,
    model: model.key,
    parameters: draft.parameters,
  });
  const free = quote.payment_method === 'trial';
  const lines = [
    ctx.t('generate-card', {
      model: escapeHtml(model.name),
      price: free
        ? ctx.t('price-free', { left: quote.trial.remaining })
        : ctx.t('price-credits', { credits: quote.price_credits }),
      duration: durationText(ctx, model),
    }),
  ];
  if (draft.prompt !== '') {
    lines.push(ctx.t('generate-card-prompt', { prompt: escapeHtml(draft.prompt) }));
  }
  if (draft.references.length > 0) {
    lines.push(ctx.t('generate-card-references', { count: draft.references.length }));
  }
  const id = draft.messageId;
  const keyboard = new InlineKeyboard()
    .text(ctx.t('button-model', { model: model.name }), `g:${id}:m`)
    .row();
  model.parameters.forEach((parameter, index) => {
    keyboard
      .text(
        ctx.t('button-parameter', {
          label: parameter.label,
          value: draft.parameters[parameter.name] ?? parameter.default,
        }),
        `g:${id}:p:${index}`,
      )
      .row();
  });
  keyboard.text(
    free
      ? ctx.t('button-start-free')
      : ctx.t('button-start-credits', { credits: quote.price_credits }),
    `g:${id}:go`,
  );
  await putCard(ctx, draft, lines.join('\n'), keyboard);
}

async function putCard(
  ctx: BotContext,
  draft: Draft,
  text: string,
  keyboard: InlineKeyboard,
): Promise<void> {
  if (draft.cardMessageId !== undefined) {
    await ctx.api
      .editMessageText(draft.chatId, draft.cardMessageId, text, { ...html, reply_markup: keyboard })
      .catch((error: unknown) => {
        // Telegram refuses an edit that changes nothing; anything else is real.
        if (!String(error).includes('message is not modified')) throw error;
      });
    return;
  }
  const card = await ctx.api.sendMessage(draft.chatId, text, {
    ...html,
    reply_markup: keyboard,
    reply_parameters: { message_id: draft.messageId, allow_sending_without_reply: true },
  });
  draft.cardMessageId = card.message_id;
  await drafts(ctx).save(draft);
}

/** The draft a card's button belongs to; null (and the user told) when it has expired. */
async function draftOf(ctx: BotContext, messageId: number): Promise<Draft | null> {
  if (!ctx.chat) return null;
  const draft = await drafts(ctx).get(ctx.chat.id, messageId);
  if (!draft) await acknowledge(ctx, ctx.t('generate-draft-expired'), true);
  return draft;
}

generateFlow.callbackQuery(/^g:(\d+):m$/, async (ctx) => {
  const draft = await draftOf(ctx, Number(ctx.match[1]));
  if (!draft) return;
  await acknowledge(ctx);
  try {
    const catalog = await ctx.services.api.catalog();
    const keyboard = new InlineKeyboard();
    catalog.forEach((model, index) => {
      const fits =
        isTool(model) === (draft.tools ?? false) && model.max_references >= draft.references.length;
      // A model no provider can serve now (GET /models `available`) is not offered.
      if (!fits || !model.available) return;
      const mark = model.key === draft.model ? '✅ ' : '';
      keyboard
        .text(
          `${mark}${ctx.t('model-line', {
            name: model.name,
            price: ctx.t('price-credits', { credits: model.price_credits }),
          })}`,
          `g:${draft.messageId}:M:${index}`,
        )
        .row();
    });
    keyboard.text(ctx.t('button-back'), `g:${draft.messageId}:c`);
    await putCard(ctx, draft, ctx.t('models-title'), keyboard);
  } catch (error) {
    await explainFailure(ctx, error);
  }
});

generateFlow.callbackQuery(/^g:(\d+):M:(\d+)$/, async (ctx) => {
  const draft = await draftOf(ctx, Number(ctx.match[1]));
  if (!draft) return;
  await acknowledge(ctx);
  try {
    const catalog = await ctx.services.api.catalog();
    const model = catalog[Number(ctx.match[2])];
    if (model) {
      draft.model = model.key;
      draft.parameters = startingParameters(model, ctx.profile?.preferences ?? {});
      await drafts(ctx).save(draft);
      await ctx.services.profiles.rememberChoice(ctx, model.key, draft.parameters);
    }
    await showCard(ctx, draft, catalog);
  } catch (error) {
    await explainFailure(ctx, error);
  }
});

generateFlow.callbackQuery(/^g:(\d+):p:(\d+)$/, async (ctx) => {
  const draft = await draftOf(ctx, Number(ctx.match[1]));
  if (!draft) return;
  await acknowledge(ctx);
  try {
    const catalog = await ctx.services.api.catalog();
    const parameter = catalog.find((m) => m.key === draft.model)?.parameters[Number(ctx.match[2])];
    if (!parameter) return await showCard(ctx, draft, catalog);
    const keyboard = new InlineKeyboard();
    parameter.values.forEach((value, index) => {
      const mark = draft.parameters[parameter.name] === value ? '✅ ' : '';
      keyboard.text(`${mark}${value}`, `g:${draft.messageId}:v:${ctx.match[2]}:${index}`);
      if (index % 3 === 2) keyboard.row();
    });
    keyboard.row().text(ctx.t('button-back'), `g:${draft.messageId}:c`);
    await putCard(ctx, draft, ctx.t('parameter-title', { label: parameter.label }), keyboard);
  } catch (error) {
    await explainFailure(ctx, error);
  }
});

generateFlow.callbackQuery(/^g:(\d+):v:(\d+):(\d+)$/, async (ctx) => {
  const draft = await draftOf(ctx, Number(ctx.match[1]));
  if (!draft) return;
  await acknowledge(ctx);
  try {
    const catalog = await ctx.services.api.catalog();
    const parameter = catalog.find((m) => m.key === draft.model)?.parameters[Number(ctx.match[2])];
    const value = parameter?.values[Number(ctx.match[3])];
    if (parameter && value !== undefined) {
      draft.parameters[parameter.name] = value;
      await drafts(ctx).save(draft);
      await ctx.services.profiles.rememberChoice(ctx, draft.model, draft.parameters);
    }
    await showCard(ctx, draft, catalog);
  } catch (error) {
    await explainFailure(ctx, error);
  }
});

generateFlow.callbackQuery(/^g:(\d+):c$/, async (ctx) => {
  const draft = await draftOf(ctx, Number(ctx.match[1]));
  if (!draft) return;
  await acknowledge(ctx);
  try {
    await showCard(ctx, draft);
  } catch (error) {
    await explainFailure(ctx, error);
  }
});

generateFlow.callbackQuery(/^g:(\d+):go$/, async (ctx) => {
  const draft = await draftOf(ctx, Number(ctx.match[1]));
  if (!draft || !ctx.from) return;
  if (draft.generationId !== undefined) {
    await acknowledge(ctx, ctx.t('generate-already-started'));
    return;
  }
  await acknowledge(ctx);
  // The card says "queued" before the API is asked, never after: once the API has it, the worker
  // edits the card (drawing, done), and a late edit of ours would overwrite what it said.
  await putCard(ctx, draft, ctx.t('generate-started'), new InlineKeyboard());
  try {
    const accepted = await ctx.services.api.submit(
      {
        telegram_id: ctx.from.id,
        model: draft.model,
        prompt: draft.prompt,
        parameters: draft.parameters,
        references: draft.references,
        // The worker edits the card (now the status message) and replies to the prompt.
        telegram: {
          chat_id: draft.chatId,
          reply_to_message_id: draft.messageId,
          ...(draft.cardMessageId === undefined ? {} : { status_message_id: draft.cardMessageId }),
          language: ctx.language,
        },
      },
      // One generation per draft, whatever is redelivered or tapped twice.
      `tg:${draft.chatId}:draft:${draft.messageId}`,
    );
    draft.generationId = accepted.id;
    await drafts(ctx).save(draft);
  } catch (error) {
    await restoreCard(ctx);
    await explainFailure(ctx, error);
  }
});

/**
 * Puts back the card as it was when its start button was tapped (its text, entities and
 * buttons, from the tapped message itself: no API call, so it works while the API is down).
 */
async function restoreCard(ctx: BotContext): Promise<void> {
  const card = ctx.callbackQuery?.message;
  if (!card || !('text' in card) || card.text === undefined) return;
  await ctx.api
    .editMessageText(card.chat.id, card.message_id, card.text, {
      ...(card.entities === undefined ? {} : { entities: card.entities }),
      ...(card.reply_markup === undefined ? {} : { reply_markup: card.reply_markup }),
    })
    .catch((error: unknown) => {
      ctx.services.logger.warn({ err: error }, 'the settings card could not be put back');
    });
}

/** A new draft for a generation again, or for an edit of its image: used by the result buttons. */
export async function draftFrom(
  ctx: BotContext,
  message: Message,
  source: {
    prompt: string;
    model: string;
    parameters: Record<string, string>;
    references: string[];
  },
): Promise<void> {
  if (!ctx.chat) return;
  const draft: Draft = {
    chatId: ctx.chat.id,
    messageId: message.message_id,
    prompt: source.prompt,
    references: source.references,
    model: source.model,
    parameters: { ...source.parameters },
  };
  try {
    await drafts(ctx).save(draft);
    await showCard(ctx, draft);
  } catch (error) {
    await explainFailure(ctx, error);
  }
}
