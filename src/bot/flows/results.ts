import { Composer, InputFile } from 'grammy';
import type { CallbackQuery } from 'grammy/types';
import { decodeResultAction, RESULT_ACTION_DATA } from '../../delivery/result-actions.ts';
import type { BotContext } from '../context.ts';
import { acknowledge, explainFailure, html } from '../replies.ts';
import { draftFrom, pendingEditKey } from './generate.ts';

/**
 * The buttons under a delivered image: 🔁 again (same prompt and settings, a new card with a new
 * quote), ✏️ edit (the image becomes the reference of the next prompt), 📎 original (the full file
 * as a document). The callback data is written by the worker's delivery.
 */
export const resultsFlow = new Composer<BotContext>();

resultsFlow.callbackQuery(RESULT_ACTION_DATA, async (ctx) => {
  const pressed = decodeResultAction(ctx.callbackQuery.data);
  await acknowledge(ctx);
  if (!pressed) return;
  if (pressed.action === 'regenerate') await again(ctx, pressed.generationId);
  else if (pressed.action === 'edit') await editNext(ctx);
  else await sendOriginal(ctx, pressed.generationId);
});

async function again(ctx: BotContext & { callbackQuery: CallbackQuery }, id: string) {
  const message = ctx.callbackQuery.message;
  if (!message) return;
  try {
    const generation = await ctx.services.api.generation(id);
    await draftFrom(ctx, message, {
      prompt: generation.prompt,
      model: generation.model,
      parameters: generation.parameters,
      references: generation.references
        .filter((reference) => reference.kind === 'telegram_file')
        .map((reference) => reference.value),
    });
  } catch (error) {
    await explainFailure(ctx, error);
  }
}

async function editNext(ctx: BotContext & { callbackQuery: CallbackQuery }) {
  const photo = ctx.callbackQuery.message?.photo?.at(-1);
  const document = ctx.callbackQuery.message?.document;
  const fileId = photo?.file_id ?? document?.file_id;
  if (!ctx.chat || !fileId) return;
  // The next prompt in this chat edits this image (for an hour).
  await ctx.services.store.set(pendingEditKey(ctx.chat.id), fileId, 3600);
  await ctx.reply(ctx.t('edit-ask-prompt'), html);
}

async function sendOriginal(ctx: BotContext & { callbackQuery: CallbackQuery }, id: string) {
  try {
    const generation = await ctx.services.api.generation(id);
    const result = generation.results[0];
    if (!result) {
      await ctx.reply(ctx.t('history-no-image'), html);
      return;
    }
    const bytes = await ctx.services.api.imageBytes(result.url);
    const extension = result.mime_type.split('/')[1] ?? 'png';
    await ctx.replyWithDocument(new InputFile(bytes, `${generation.id}.${extension}`), {
      reply_parameters: ctx.callbackQuery.message
        ? { message_id: ctx.callbackQuery.message.message_id, allow_sending_without_reply: true }
        : undefined,
    });
  } catch (error) {
    await explainFailure(ctx, error);
  }
}
