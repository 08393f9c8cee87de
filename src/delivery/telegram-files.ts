import { Api } from 'grammy';
import { ProviderError } from '../providers/types.ts';

/** Telegram bots may download files of up to 20 MB through the Bot API. */
const MAX_BYTES = 20 * 1024 * 1024;

/**
 * Downloads a Telegram file (a reference image the user sent the bot) for a provider. The
 * download URL carries the bot token, so it never leaves this process: providers get the bytes
 * as a data URI instead.
 */
export class TelegramFiles {
  private readonly api: Api;
  private readonly apiRoot: string;

  constructor(
    private readonly botToken: string,
    apiRoot = 'https://api.telegram.org',
  ) {
    this.apiRoot = apiRoot.replace(/\/+$/, '');
    this.api = new Api(botToken, { apiRoot: this.apiRoot, timeoutSeconds: 30 });
  }

  async dataUri(fileId: string): Promise<string> {
    let filePath: string | undefined;
    try {
      filePath = (await this.api.getFile(fileId)).file_path;
    } catch (error) {
      throw this.failure('getFile failed', error, true);
    }
    if (!filePath) throw new ProviderError('Telegram gave no file_path for a reference', false);
    let response: Response;
    try {
      response = await fetch(`${this.apiRoot}/file/bot${this.botToken}/${filePath}`, {
        signal: AbortSignal.timeout(30_000),
      });
    } catch (error) {
      throw this.failure('download failed', error, true);
    }
    if (!response.ok) {
      throw new ProviderError(
        `Telegram file download answered HTTP ${response.status}`,
        response.status >= 500 || response.status === 429,
      );
    }
    const bytes = Buffer.from(await response.arrayBuffer());
    if (bytes.length > MAX_BYTES) throw new ProviderError('reference image over 20 MB', false);
    const type = response.headers.get('content-type')?.startsWith('image/')
      ? response.headers.get('content-type')
      : mimeOf(filePath);
    return `data:${type};base64,${bytes.toString('base64')}`;
  }

  private failure(what: string, error: unknown, retryable: boolean): ProviderError {
    const message = error instanceof Error ? error.message : String(error);
    // grammY's errors may quote the method URL, which holds the token.
    return new ProviderError(
      `Telegram reference ${what}: ${message.split(this.botToken).join('<token>')}`,
      retryable,
    );
  }
}

function mimeOf(path: string): string {
  if (/\.png$/i.test(path)) return 'image/png';
  if (/\.webp$/i.test(path)) return 'image/webp';
  return 'image/jpeg';
}
