import { Api, GrammyError } from 'grammy';
import { ProviderError, type ProviderFailureCode } from '../providers/types.ts';
import { sniffImageType } from '../storage/image-type.ts';

/** Telegram bots may download files of up to 20 MB through the Bot API. */
const MAX_BYTES = 20 * 1024 * 1024;

export interface TelegramFilesOptions {
  /** The largest file accepted (default: the Bot API's 20 MB download limit). */
  maxBytes?: number;
  /** Timeout of getFile and, separately, of the download (default 30). */
  timeoutSeconds?: number;
}

/**
 * Downloads a Telegram file (a reference image the user sent the bot) for a provider. The
 * download URL carries the bot token, so it never leaves this process: providers get the bytes
 * as a data URI instead, and no error message quotes the token.
 *
 * Failures are sorted like a provider's: the Bot API refusing the file (400 "invalid file_id",
 * 400 "file is too big", a file over `maxBytes`, one that is not an image) is final, while
 * network errors, timeouts, 429 and 5xx are worth retrying.
 */
export class TelegramFiles {
  private readonly api: Api;
  private readonly apiRoot: string;
  private readonly maxBytes: number;
  private readonly timeoutMs: number;

  constructor(
    private readonly botToken: string,
    apiRoot = 'https://api.telegram.org',
    options: TelegramFilesOptions = {},
  ) {
    this.apiRoot = apiRoot.replace(/\/+$/, '');
    const timeoutSeconds = options.timeoutSeconds ?? 30;
    this.timeoutMs = timeoutSeconds * 1000;
    this.maxBytes = options.maxBytes ?? MAX_BYTES;
    this.api = new Api(botToken, { apiRoot: this.apiRoot, timeoutSeconds });
  }

  /** The file as `data:<image type>;base64,…`; `signal` stops the download (a job cancelled). */
  async dataUri(fileId: string, signal?: AbortSignal): Promise<string> {
    const { data, mimeType } = await this.download(fileId, signal);
    return `data:${mimeType};base64,${data.toString('base64')}`;
  }

  /** The file's bytes and image type; `signal` stops the download (a job cancelled). */
  async download(
    fileId: string,
    signal?: AbortSignal,
  ): Promise<{ data: Buffer; mimeType: string }> {
    let file: Awaited<ReturnType<Api['getFile']>>;
    try {
      // grammY types its signal after the abort-controller shim; a native one works the same.
      file = await this.api.getFile(fileId, signal as Parameters<Api['getFile']>[1]);
    } catch (error) {
      throw this.getFileFailure(error);
    }
    const filePath = file.file_path;
    if (!filePath) throw new ProviderError('Telegram gave no file_path for a reference', false);
    if (file.file_size !== undefined && file.file_size > this.maxBytes) throw this.tooBig();

    const timeout = AbortSignal.timeout(this.timeoutMs);
    const downloadSignal = signal ? AbortSignal.any([signal, timeout]) : timeout;
    let bytes: Buffer;
    let contentType: string | null;
    try {
      const response = await fetch(`${this.apiRoot}/file/bot${this.botToken}/${filePath}`, {
        signal: downloadSignal,
      });
      if (!response.ok) {
        await response.body?.cancel().catch(() => undefined);
        throw new ProviderError(
          `Telegram file download answered HTTP ${response.status}`,
          response.status >= 500 || response.status === 429,
        );
      }
      const length = Number(response.headers.get('content-length') ?? Number.NaN);
      if (length > this.maxBytes) {
        await response.body?.cancel().catch(() => undefined);
        throw this.tooBig();
      }
      contentType = response.headers.get('content-type');
      bytes = await this.readCapped(response);
    } catch (error) {
      if (error instanceof ProviderError) throw error;
      throw this.failure('download failed', error, true);
    }

    const type = imageTypeOf(bytes, contentType, filePath);
    if (!type) {
      throw new ProviderError(
        'the Telegram reference file is not an image',
        false,
        undefined,
        'invalid_input',
      );
    }
    return { data: bytes, mimeType: type };
  }

  /** The body, refused as soon as it grows past maxBytes (file_size is optional in getFile). */
  private async readCapped(response: Response): Promise<Buffer> {
    const chunks: Uint8Array[] = [];
    let total = 0;
    if (!response.body) return Buffer.alloc(0);
    const reader = response.body.getReader();
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      total += value.byteLength;
      if (total > this.maxBytes) {
        await reader.cancel().catch(() => undefined);
        throw this.tooBig();
      }
      chunks.push(value);
    }
    return Buffer.concat(chunks, total);
  }

  private tooBig(): ProviderError {
    const mb = 1024 * 1024;
    const limit = this.maxBytes % mb === 0 ? `${this.maxBytes / mb} MB` : `${this.maxBytes} bytes`;
    return new ProviderError(`reference image over ${limit}`, false, undefined, 'invalid_input');
  }

  /** The Bot API's own answers are final unless they are 429 or 5xx; network errors are not. */
  private getFileFailure(error: unknown): ProviderError {
    if (error instanceof GrammyError) {
      const code = error.error_code;
      const retryAfter = error.parameters.retry_after;
      return this.failure(
        'getFile failed',
        error,
        code === 429 || code >= 500,
        code === 429 ? retryAfter : undefined,
        // 400: a file_id the Bot API does not know (or cannot serve): the input is bad.
        code === 400 ? 'invalid_input' : undefined,
      );
    }
    return this.failure('getFile failed', error, true);
  }

  private failure(
    what: string,
    error: unknown,
    retryable: boolean,
    retryAfterSeconds?: number,
    failureCode?: ProviderFailureCode,
  ): ProviderError {
    const message = error instanceof Error ? error.message : String(error);
    // grammY's and fetch's errors may quote the URL, which holds the token (maybe URL-encoded).
    const safe = [this.botToken, encodeURIComponent(this.botToken)].reduce(
      (text, secret) => text.split(secret).join('<token>'),
      message,
    );
    return new ProviderError(
      `Telegram reference ${what}: ${safe}`,
      retryable,
      retryAfterSeconds,
      failureCode,
    );
  }
}

/** The image type by the bytes themselves, else by the server's type, else by the extension. */
function imageTypeOf(bytes: Buffer, contentType: string | null, path: string): string | null {
  const sniffed = sniffImageType(bytes);
  if (sniffed) return sniffed;
  // Parameters (`; charset=…`) have no place in a data URI's image type.
  const declared = contentType?.split(';')[0]?.trim().toLowerCase();
  if (declared && /^image\/[a-z0-9.+-]+$/.test(declared)) return declared;
  if (/\.png$/i.test(path)) return 'image/png';
  if (/\.webp$/i.test(path)) return 'image/webp';
  if (/\.jpe?g$/i.test(path)) return 'image/jpeg';
  return null;
}
