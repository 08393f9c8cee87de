import type { RequestShape } from './request-shape.ts';

/**
 * An image provider: where a generation is actually made. Submitting returns the provider's own
 * job id, which the queue records before anything else, so a worker that takes over a job polls
 * that id instead of submitting (and paying) again.
 */
export interface ProviderRequest {
  /** Our generation id; providers that accept a client reference get it. */
  generationId: string;
  /** The provider's model: the catalog's text→image or edit model. */
  model: string;
  /**
   * `tool` (a catalog tool: upscale, denoise…): the model works on `referenceUrls[0]` and takes no
   * prompt (it may be empty). Default `image`.
   */
  kind?: 'image' | 'tool';
  prompt: string;
  parameters: Record<string, string>;
  /** Reference images as URLs the provider can fetch. */
  referenceUrls: string[];
  /**
   * How `model` takes its inputs: the catalog route's facts (see request-shape.ts). The HTTP
   * providers refuse a request without one; the offline provider needs none.
   */
  shape?: RequestShape;
  /** Where the provider should POST the result, if it supports webhooks. */
  webhookUrl?: string;
}

export interface ProviderImage {
  /** Where the image can be downloaded now (provider URLs expire: copy it soon). */
  url?: string;
  /** The image itself, for providers that hand back bytes. */
  data?: Buffer;
  mimeType: string;
  width?: number;
  height?: number;
  seed?: number;
}

export type ProviderStatus =
  | { state: 'pending' }
  | { state: 'succeeded'; images: ProviderImage[]; metadata?: Record<string, unknown> }
  | { state: 'failed'; error: string; retryable: boolean };

/** A webhook call as it arrived: the signature covers the exact bytes, so they are kept. */
export interface ProviderWebhook {
  headers: Readonly<Record<string, string | string[] | undefined>>;
  rawBody: Buffer;
}

export interface ProviderWebhookEvent {
  providerJobId: string;
  status: ProviderStatus;
}

/** What a provider account holds, in its own currency (WaveSpeed: USD). */
export interface ProviderBalance {
  amount: number;
  currency: string;
}

export interface ImageProvider {
  readonly name: string;
  /** Whether webhooks can be verified (a secret is configured); without, the job is polled only. */
  readonly acceptsWebhooks: boolean;
  submit(request: ProviderRequest, signal?: AbortSignal): Promise<{ providerJobId: string }>;
  status(providerJobId: string, signal?: AbortSignal): Promise<ProviderStatus>;
  /**
   * Checks a webhook's signature and reads the job's new state. Throws WebhookSignatureError when
   * the call is not authentic (or too old). Absent when the provider has no webhooks: we poll.
   */
  readWebhook?(webhook: ProviderWebhook): ProviderWebhookEvent;
  /** The account's balance. Absent when the provider has no balance API (its status is unknown). */
  balance?(signal?: AbortSignal): Promise<ProviderBalance>;
  /**
   * Uploads a reference image to the provider's own file storage and answers the URL its models
   * take; used when we have no public URL to serve it from. Absent: the provider has no such API.
   */
  uploadReference?(image: ReferenceImage, signal?: AbortSignal): Promise<string>;
}

/** A reference image's bytes (checked to be an image) and type. */
export interface ReferenceImage {
  data: Buffer;
  mimeType: string;
}

/** A webhook whose signature is missing, wrong or stale: answered 401, never acted on. */
export class WebhookSignatureError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'WebhookSignatureError';
  }
}

/**
 * Why a final refusal happened, when the provider can tell: `invalid_input` = the request or its
 * image cannot be used (the generation fails as bad input, not as a provider refusal).
 */
export type ProviderFailureCode = 'invalid_input';

/** A provider error worth retrying (timeouts, 429, 5xx) as opposed to a final refusal. */
export class ProviderError extends Error {
  constructor(
    message: string,
    readonly retryable: boolean,
    /** The provider's own Retry-After, when it gave one. */
    readonly retryAfterSeconds?: number,
    readonly failureCode?: ProviderFailureCode,
    /**
     * The call may have reached the provider and taken effect though no answer came (a timeout,
     * a connection dropped after sending): a submit that failed so may have made a job there.
     */
    readonly unconfirmed = false,
  ) {
    super(message);
    this.name = 'ProviderError';
  }
}
