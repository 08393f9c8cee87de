// The pieces of bench:pipeline's storage run (issue 12): a provider whose results are URLs on a
// local "CDN", a store that notes when each copy is written, and a webhook receiver that notes
// when each generation is delivered. The storage step of a generation is from the CDN receiving
// our download to the copy being written (download, magic-byte check, write); its time to
// delivery is from the submit being accepted to the signed delivery webhook arriving.
import { randomUUID } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Readable } from 'node:stream';
import sharp from 'sharp';
import type { ImageProvider, ProviderRequest, ProviderStatus } from '../src/providers/types.ts';
import { ResultStore, type StorageBackend, type StoredObject } from '../src/storage/results.ts';

/** A 1024×1024 JPEG of noise (about what a provider's result weighs: hundreds of KB). */
export async function providerLikeImage(): Promise<Buffer> {
  return sharp({
    create: {
      width: 1024,
      height: 1024,
      channels: 3,
      background: '#808080',
      noise: { type: 'gaussian', mean: 128, sigma: 40 },
    },
  })
    .jpeg({ quality: 90 })
    .toBuffer();
}

/** Serves `image` at /<anything>.jpg, noting when each download began. */
export async function startCdn(image: Buffer): Promise<{
  base: string;
  downloadStarted: Map<string, number>;
  close(): Promise<void>;
}> {
  const downloadStarted = new Map<string, number>();
  const server = createServer((request, response) => {
    const name = (request.url ?? '/').slice(1).replace(/\.jpg$/, '');
    downloadStarted.set(name, performance.now());
    response
      .writeHead(200, { 'content-type': 'image/jpeg', 'content-length': image.length })
      .end(image);
  });
  return { base: await listen(server), downloadStarted, close: () => close(server) };
}

/** Answers at once, with its result as a URL on the CDN (as WaveSpeed and Replicate do). */
export class UrlResultProvider implements ImageProvider {
  readonly name = 'wavespeed';
  readonly acceptsWebhooks = false;
  /** Provider job id → our generation id. */
  readonly generationOf = new Map<string, string>();

  constructor(private readonly cdnBase: string) {}

  async submit(request: ProviderRequest): Promise<{ providerJobId: string }> {
    // Unique over runs: a provider's job ids are unique in the queue.
    const id = `job-${randomUUID()}`;
    this.generationOf.set(id, request.generationId);
    return { providerJobId: id };
  }

  async status(providerJobId: string): Promise<ProviderStatus> {
    return {
      state: 'succeeded',
      images: [{ url: `${this.cdnBase}/${providerJobId}.jpg`, mimeType: 'image/jpeg' }],
    };
  }
}

/** The store under test, noting when each generation's copy was written. */
export class TimedStore extends ResultStore {
  readonly backend: StorageBackend;
  readonly savedAt = new Map<string, number>();

  constructor(private readonly inner: ResultStore) {
    super();
    this.backend = inner.backend;
  }

  override async save(
    generationId: string,
    position: number,
    data: Buffer,
    mimeType: string,
  ): Promise<string> {
    const key = await super.save(generationId, position, data, mimeType);
    this.savedAt.set(generationId, performance.now());
    return key;
  }

  put(key: string, data: Buffer, contentType: string): Promise<void> {
    return this.inner.put(key, data, contentType);
  }
  get(key: string): Promise<StoredObject | null> {
    return this.inner.get(key);
  }
  directUrl(key: string): Promise<string | null> {
    return this.inner.directUrl(key);
  }
  deleteOlderThan(prefix: string, cutoff: Date): Promise<number> {
    return this.inner.deleteOlderThan(prefix, cutoff);
  }
  override localFile(key: string): string | null {
    return this.inner.localFile(key);
  }
}

/** Receives the signed delivery webhooks, noting (wall clock) when each generation's arrived. */
export async function startDeliveryReceiver(): Promise<{
  url: string;
  deliveredAt: Map<string, number>;
  close(): Promise<void>;
}> {
  const deliveredAt = new Map<string, number>();
  const server = createServer(async (request, response) => {
    const chunks: Buffer[] = [];
    for await (const chunk of request as Readable) chunks.push(chunk as Buffer);
    const event = JSON.parse(Buffer.concat(chunks).toString()) as { generation_id?: string };
    if (event.generation_id) deliveredAt.set(event.generation_id, Date.now());
    response.writeHead(200).end();
  });
  return { url: `${await listen(server)}/delivered`, deliveredAt, close: () => close(server) };
}

export function percentile(values: readonly number[], fraction: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor(fraction * sorted.length))] ?? 0;
}

async function listen(server: Server): Promise<string> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

function close(server: Server): Promise<void> {
  server.closeAllConnections();
  return new Promise((resolve) => server.close(() => resolve()));
}
