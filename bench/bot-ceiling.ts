// The ceiling for bench/bot.ts: the least a grammY bot long-polling with @grammyjs/runner does for
// the benchmark's four updates — the same runner setup as ours (src/bot/run.ts: run() with the same
// allowed_updates, sequentialize per chat) and the same Bot API calls per update, in the same
// order, with texts and keyboards of about the same size, but no calls to our API, no conversation
// store, no translations. What is left is grammY + runner + the Bot API round trips.
//
//   CEILING_BOT_TOKEN=… CEILING_API_ROOT=http://127.0.0.1:… node --import tsx bench/bot-ceiling.ts
//
//   /start              → sendMessage (greeting + the main menu)
//   menu:balance        → answerCallbackQuery, sendMessage (balance + 4 buttons)
//   a text prompt       → sendMessage (the settings card, replying to the prompt, start button g:<id>:go)
//   g:<id>:go           → answerCallbackQuery, editMessageText (the card becomes "queued")
import { run, sequentialize } from '@grammyjs/runner';
import { Bot, InlineKeyboard } from 'grammy';

function requiredEnv(name: string): string {
  const value = process.env[name];
  if (value === undefined || value === '') throw new Error(`${name} must be set`);
  return value;
}

const html = { parse_mode: 'HTML' as const };
const escapeHtml = (text: string): string =>
  text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

const menu = new InlineKeyboard()
  .text('🎨 Generate', 'menu:generate')
  .text('💰 Balance', 'menu:balance')
  .row()
  .text('⭐ Top up', 'menu:topup')
  .text('🖼 History', 'menu:history')
  .row()
  .text('🎁 Invite friends', 'menu:referral')
  .text('🌐 Language', 'menu:language')
  .row()
  .text('❓ Help', 'menu:help');

const balanceKeyboard = new InlineKeyboard()
  .text('⭐ Top up', 'menu:topup')
  .text('🖼 History', 'menu:history')
  .row()
  .text('🎁 Invite friends', 'menu:referral')
  .text('🌐 Language', 'menu:language');

const bot = new Bot(requiredEnv('CEILING_BOT_TOKEN'), {
  client: { apiRoot: requiredEnv('CEILING_API_ROOT') },
});
bot.use(sequentialize((ctx) => ctx.chat?.id.toString() ?? ctx.from?.id.toString()));

bot.command('start', async (ctx) => {
  await ctx.reply(
    `👋 Hi, <b>${escapeHtml(ctx.from?.first_name ?? '')}</b>! I draw pictures from your words.\n\nSend me a prompt, or choose below.`,
    { ...html, reply_markup: menu },
  );
});

bot.callbackQuery('menu:balance', async (ctx) => {
  await ctx.answerCallbackQuery();
  await ctx.reply(
    '💰 Balance: <b>1000</b> credits\n🎁 Free generations left: <b>3</b>\nThat is 26 images with Seedream 4.0.',
    {
      ...html,
      reply_markup: balanceKeyboard,
    },
  );
});

bot.on('message:text', async (ctx) => {
  const id = ctx.message.message_id;
  const keyboard = new InlineKeyboard()
    .text('🧠 Model: Seedream 4.0', `g:${id}:m`)
    .row()
    .text('Size: 2048*2048', `g:${id}:p:0`)
    .row()
    .text('🚀 Start — free', `g:${id}:go`);
  await ctx.api.sendMessage(
    ctx.chat.id,
    `🎛 <b>Seedream 4.0</b>\nPrice: free (3 left)\nUsually takes about 20 s\n\n📝 ${escapeHtml(ctx.message.text)}`,
    {
      ...html,
      reply_markup: keyboard,
      reply_parameters: { message_id: id, allow_sending_without_reply: true },
    },
  );
});

bot.callbackQuery(/^g:(\d+):go$/, async (ctx) => {
  await ctx.answerCallbackQuery();
  const card = ctx.callbackQuery.message;
  if (!card || !ctx.chat) return;
  await ctx.api.editMessageText(
    ctx.chat.id,
    card.message_id,
    '⏳ Queued: position 1. I will send the image here.',
    {
      ...html,
      reply_markup: new InlineKeyboard(),
    },
  );
});

bot.catch(({ error }) => {
  process.stderr.write(`ceiling bot: an update failed: ${String(error)}\n`);
});

await bot.init();
await bot.api.deleteWebhook();
const runner = run(bot, {
  runner: { fetch: { allowed_updates: ['message', 'callback_query', 'pre_checkout_query'] } },
});
process.stdout.write('ceiling bot polling\n');
process.once('SIGTERM', () => {
  void runner.stop().then(() => process.exit(0));
});
