import { randomBytes } from 'node:crypto';
import { Composer, InlineKeyboard, InputFile } from 'grammy';
import { escapeHtml } from '../../locales/index.ts';
import type { Generation } from '../api.ts';
import type { BotContext } from '../context.ts';
import { acknowledge, explainFailure, html } from '../replies.ts';

/**
 * The user's generations, newest first, five a page; tapping one sends its image again. The
 * API's cursor is longer than a button's 64 bytes of data, so a page's cursor is kept in the
 * conversation store under a short name.
 */
export const historyFlow = new Composer<BotContext>();

const PAGE = 5;
const CURSOR_TTL_SECONDS = 3600;

function statusMark(ctx: BotContext, generation: Generation): string {
  if (generation.status === 'succeeded') return ctx.t('history-status-succeeded');
  if (generation.status === 'failed' || generation.status === 'cancelled') {
    return ctx.t('history-status-failed');
  }
  return ctx.t('history-status-active');
}

function shorten(text: string, max = 40): string {
  return text.length <= max ? text : `${text.slice(0, max - 1)}…`;
}

async function showPage(ctx: BotContext, cursor?: string): Promise<void> {
  if (!ctx.from) return;
  try {
    const page = await ctx.services.api.generations(ctx.from.id, {
      limit: PAGE,
      ...(cursor ? { cursor } : {}),
    });
    if (page.generations.length === 0 && !cursor) {
      await ctx.reply(ctx.t('history-empty'), html);
      return;
    }
    const keyboard = new InlineKeyboard();
    const lines = [ctx.t('history-title')];
    page.generations.forEach((generation, index) => {
      lines.push(
        `${index + 1}. ${ctx.t('history-item', {
          status: statusMark(ctx, generation),
          model: escapeHtml(generation.model),
          prompt: escapeHtml(shorten(generation.prompt)),
        })}`,
      );
      if (generation.results.length > 0) keyboard.text(`${index + 1}`, `h:s:${generation.id}`);
    });
    keyboard.row();
    if (page.next_cursor) {
      const name = randomBytes(6).toString('base64url');
      await ctx.services.store.set(`history:${name}`, page.next_cursor, CURSOR_TTL_SECONDS);
      keyboard.text(ctx.t('button-older'), `h:p:${name}`);
    }
    keyboard.text(ctx.t('button-menu'), 'menu:home');
    await ctx.reply(lines.join('\n'), { ...html, reply_markup: keyboard });
  } catch (error) {
    await explainFailure(ctx, error);
  }
}

historyFlow.command('history', (ctx) => showPage(ctx));
historyFlow.callbackQuery('menu:history', async (ctx) => {
  await acknowledge(ctx);
  await showPage(ctx);
});

historyFlow.callbackQuery(/^h:p:([A-Za-z0-9_-]{8})$/, async (ctx) => {
  const cursor = await ctx.services.store.get<string>(`history:${ctx.match[1]}`);
  if (!cursor) {
    await acknowledge(ctx, ctx.t('generate-draft-expired'), true);
    return;
  }
  await acknowledge(ctx);
  await showPage(ctx, cursor);
});

historyFlow.callbackQuery(/^h:s:([0-9a-f-]{36})$/, async (ctx) => {
  await acknowledge(ctx);
  try {
    const generation = await ctx.services.api.generation(ctx.match[1] ?? '');
    const result = generation.results[0];
    if (!result) {
      await ctx.reply(ctx.t('history-no-image'), html);
      return;
    }
    const bytes = await ctx.services.api.imageBytes(result.url);
    await ctx.replyWithPhoto(new InputFile(bytes, `${generation.id}.png`), {
      caption: escapeHtml(shorten(generation.prompt, 900)),
      ...html,
    });
  } catch (error) {
    await explainFailure(ctx, error);
  }
});
