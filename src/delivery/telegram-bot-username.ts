import { Api } from 'grammy';

/**
 * The bot's username, for links into the bot (t.me/<username>?start=…). TELEGRAM_BOT_USERNAME
 * names it when set; otherwise the Bot API's getMe tells it once and it is kept for `keepMs`
 * (a username changes only through BotFather). A failed getMe is not kept: the next call asks
 * again. Null when there is neither a username nor a bot token, or Telegram does not answer.
 */
export class BotUsername {
  private readonly api: Api | null;
  private known: { username: string; until: number } | null = null;
  private asking: Promise<string | null> | null = null;

  constructor(
    private readonly options: {
      /** TELEGRAM_BOT_USERNAME: no Bot API call at all. */
      configured: string | null;
      botToken: string | null;
      /** Root of the Bot API server, without a trailing slash. */
      apiRoot: string;
      keepMs?: number;
      timeoutSeconds?: number;
    },
  ) {
    this.api =
      options.configured === null && options.botToken !== null
        ? new Api(options.botToken, {
            apiRoot: options.apiRoot.replace(/\/+$/, ''),
            timeoutSeconds: options.timeoutSeconds ?? 10,
          })
        : null;
  }

  async get(now = Date.now()): Promise<string | null> {
    if (this.options.configured !== null) return this.options.configured;
    if (this.api === null) return null;
    if (this.known && this.known.until > now) return this.known.username;
    // Concurrent callers share one getMe.
    this.asking ??= this.ask(this.api, now).finally(() => {
      this.asking = null;
    });
    return this.asking;
  }

  private async ask(api: Api, now: number): Promise<string | null> {
    try {
      const me = await api.getMe();
      this.known = { username: me.username, until: now + (this.options.keepMs ?? 3_600_000) };
      return me.username;
    } catch {
      // The error's text may hold the Bot API URL, which holds the token: not passed on.
      return null;
    }
  }
}
