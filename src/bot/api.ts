import createClient from 'openapi-fetch';
import type { paths } from '../api-client/schema.ts';
import { keepAliveFetch, PlainRequest } from './http-transport.ts';

/**
 * The bot's view of our HTTP API: typed by the generated schema, with the answers it needs named
 * and the failures sorted into the two kinds a handler treats differently. The bot never touches
 * the database: the API owns state and money.
 */

type JsonOf<T> = T extends { content: { 'application/json': infer Body } } ? Body : never;
type Ok<
  Path extends keyof paths,
  Method extends keyof paths[Path],
  Status extends number,
> = paths[Path][Method] extends { responses: infer R }
  ? Status extends keyof R
    ? JsonOf<R[Status]>
    : never
  : never;

export type SyncedUser = Ok<'/api/v1/users/sync', 'post', 200>;
export type Referrals = Ok<'/api/v1/users/{telegram_id}/referrals', 'get', 200>;
export type UserUpdate = NonNullable<
  paths['/api/v1/users/{telegram_id}']['patch']['requestBody']
>['content']['application/json'];
export type CatalogModel = Ok<'/api/v1/models', 'get', 200>['models'][number];
export type Quote = Ok<'/api/v1/generations/quote', 'post', 200>;
export type Accepted = Ok<'/api/v1/generations', 'post', 202>;
export type Generation = Ok<'/api/v1/generations/{id}', 'get', 200>;
export type GenerationPage = Ok<'/api/v1/users/{telegram_id}/generations', 'get', 200>;
export type StarsPackage = Ok<'/api/v1/payments/stars/packages', 'get', 200>['packages'][number];
export type PaymentResult = Ok<'/api/v1/payments/stars/confirm', 'post', 201>;
export type RefundResult = Ok<'/api/v1/payments/stars/refund', 'post', 200>;
export type SubmitBody = NonNullable<
  paths['/api/v1/generations']['post']['requestBody']
>['content']['application/json'];
export type ConfirmBody = NonNullable<
  paths['/api/v1/payments/stars/confirm']['post']['requestBody']
>['content']['application/json'];
export type RefundBody = NonNullable<
  paths['/api/v1/payments/stars/refund']['post']['requestBody']
>['content']['application/json'];

/** The API refused the request (4xx): a problem document with a stable code. */
export class ApiProblem extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    readonly problem: Readonly<Record<string, unknown>>,
  ) {
    super(`${status} ${code}`);
    this.name = 'ApiProblem';
  }
}

/** The API could not be reached or failed (5xx): worth trying again later. */
export class ApiUnavailable extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'ApiUnavailable';
  }
}

interface Answer<T> {
  data?: T;
  error?: unknown;
  response: Response;
}

async function unwrap<T>(call: () => Promise<Answer<T>>): Promise<T> {
  let answer: Answer<T>;
  try {
    answer = await call();
  } catch (error) {
    throw new ApiUnavailable('the API could not be reached', { cause: error });
  }
  const { response } = answer;
  if (response.status >= 500) throw new ApiUnavailable(`the API answered ${response.status}`);
  if (answer.error !== undefined || answer.data === undefined) {
    const problem =
      answer.error !== null && typeof answer.error === 'object'
        ? (answer.error as Record<string, unknown>)
        : {};
    throw new ApiProblem(response.status, String(problem.code ?? 'unknown'), problem);
  }
  return answer.data;
}

/** A value read from the API and kept for a while (the catalog, the Stars packages). */
class Cached<T> {
  private value: { at: number; data: T } | null = null;
  constructor(
    private readonly ttlMs: number,
    private readonly read: () => Promise<T>,
  ) {}
  async get(options: { fresh?: boolean } = {}): Promise<T> {
    if (!options.fresh && this.value && Date.now() - this.value.at < this.ttlMs) {
      return this.value.data;
    }
    const data = await this.read();
    this.value = { at: Date.now(), data };
    return data;
  }
}

export interface BotApiOptions {
  baseUrl: string;
  /** A token from API_TOKENS. */
  token: string;
  fetch?: typeof fetch;
}

export class BotApi {
  private readonly client;
  private readonly fetcher: typeof fetch;
  private readonly models: Cached<CatalogModel[]>;
  private readonly packages: Cached<StarsPackage[]>;
  private readonly support: Cached<string | null>;

  constructor(private readonly options: BotApiOptions) {
    this.fetcher = options.fetch ?? fetch;
    this.client = createClient<paths>({
      baseUrl: options.baseUrl,
      headers: { authorization: `Bearer ${options.token}` },
      ...(options.fetch
        ? { fetch: options.fetch }
        : { fetch: keepAliveFetch, Request: PlainRequest as unknown as typeof Request }),
    });
    this.models = new Cached(30_000, async () => {
      const answer = await unwrap(() => this.client.GET('/api/v1/models'));
      return answer.models;
    });
    this.packages = new Cached(60_000, async () => {
      const answer = await unwrap(() => this.client.GET('/api/v1/payments/stars/packages'));
      return answer.packages;
    });
    this.support = new Cached(30_000, async () => {
      const answer = await unwrap(() => this.client.GET('/api/v1/info'));
      return answer.support_contact;
    });
  }

  /** Whom users contact for help: the API's runtime setting SUPPORT_CONTACT (kept 30 s). */
  supportContact(): Promise<string | null> {
    return this.support.get();
  }

  syncUser(
    body: NonNullable<
      paths['/api/v1/users/sync']['post']['requestBody']
    >['content']['application/json'],
  ) {
    return unwrap(() => this.client.POST('/api/v1/users/sync', { body }));
  }

  /** Stores the user's language and preferences; answers the user as sync does. */
  updateUser(telegramId: number, body: UserUpdate): Promise<SyncedUser> {
    return unwrap(() =>
      this.client.PATCH('/api/v1/users/{telegram_id}', {
        params: { path: { telegram_id: telegramId } },
        body,
      }),
    );
  }

  referrals(telegramId: number): Promise<Referrals> {
    return unwrap(() =>
      this.client.GET('/api/v1/users/{telegram_id}/referrals', {
        params: { path: { telegram_id: telegramId } },
      }),
    );
  }

  balance(telegramId: number) {
    return unwrap(() =>
      this.client.GET('/api/v1/users/{telegram_id}/balance', {
        params: { path: { telegram_id: telegramId } },
      }),
    );
  }

  trial(telegramId: number) {
    return unwrap(() =>
      this.client.GET('/api/v1/users/{telegram_id}/trial', {
        params: { path: { telegram_id: telegramId } },
      }),
    );
  }

  catalog(options: { fresh?: boolean } = {}): Promise<CatalogModel[]> {
    return this.models.get(options);
  }

  starsPackages(options: { fresh?: boolean } = {}): Promise<StarsPackage[]> {
    return this.packages.get(options);
  }

  quote(body: { telegram_id: number; model: string; parameters: Record<string, string> }) {
    return unwrap(() => this.client.POST('/api/v1/generations/quote', { body }));
  }

  /** Accepts a generation once per key: a redelivered update or a double tap replays the first answer. */
  submit(body: SubmitBody, idempotencyKey: string): Promise<Accepted> {
    return unwrap(() =>
      this.client.POST('/api/v1/generations', {
        body,
        headers: { 'idempotency-key': idempotencyKey },
      }),
    );
  }

  generation(id: string): Promise<Generation> {
    return unwrap(() => this.client.GET('/api/v1/generations/{id}', { params: { path: { id } } }));
  }

  generations(telegramId: number, page: { limit: number; cursor?: string }) {
    return unwrap(() =>
      this.client.GET('/api/v1/users/{telegram_id}/generations', {
        params: { path: { telegram_id: telegramId }, query: page },
      }),
    );
  }

  confirmPayment(body: ConfirmBody): Promise<PaymentResult> {
    return unwrap(() =>
      this.client.POST('/api/v1/payments/stars/confirm', {
        body,
        headers: { 'idempotency-key': `stars-confirm:${body.telegram_payment_charge_id}` },
      }),
    );
  }

  refundPayment(body: RefundBody): Promise<RefundResult> {
    return unwrap(() =>
      this.client.POST('/api/v1/payments/stars/refund', {
        body,
        headers: { 'idempotency-key': `stars-refund:${body.telegram_payment_charge_id}` },
      }),
    );
  }

  /** A result image's bytes: a stored image is served by the API (a relative URL), else the provider's URL. */
  async imageBytes(url: string): Promise<Uint8Array> {
    const absolute = new URL(url, this.options.baseUrl);
    let response: Response;
    try {
      response = await this.fetcher(absolute);
    } catch (error) {
      throw new ApiUnavailable('the image could not be fetched', { cause: error });
    }
    if (!response.ok) throw new ApiUnavailable(`the image answered ${response.status}`);
    return new Uint8Array(await response.arrayBuffer());
  }
}
