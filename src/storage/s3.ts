import type { Readable } from 'node:stream';
import {
  DeleteObjectsCommand,
  GetObjectCommand,
  ListObjectsV2Command,
  NoSuchKey,
  PutObjectCommand,
  S3Client,
  S3ServiceException,
} from '@aws-sdk/client-s3';
import { getSignedUrl } from '@aws-sdk/s3-request-presigner';
import type { S3Config } from '../core/config.ts';
import { assertKey, ResultStore, type StoredObject } from './results.ts';

/**
 * The store in S3-compatible object storage (AWS S3, MinIO, R2, …), so several API and worker
 * hosts share one set of results. Clients are sent to a presigned URL valid S3_PRESIGN_SECONDS
 * when that is above 0 (the bucket's endpoint must then be reachable by them); otherwise the API
 * streams the object itself.
 */
export class S3ResultStore extends ResultStore {
  readonly backend = 's3' as const;
  private readonly client: S3Client;
  private readonly bucket: string;
  private readonly presignSeconds: number;

  /** `maxSockets`: uploads and downloads at once (a worker's WORKER_CONCURRENCY). */
  constructor(config: S3Config, maxSockets = 50) {
    super();
    this.bucket = config.bucket;
    this.presignSeconds = config.presignSeconds;
    this.client = new S3Client({
      region: config.region,
      forcePathStyle: config.forcePathStyle,
      // The SDK's default pool is 50 sockets; a worker copies up to WORKER_CONCURRENCY results at
      // once (bench:pipeline saw uploads queue for a socket).
      requestHandler: {
        httpAgent: { maxSockets: maxSockets },
        httpsAgent: { maxSockets: maxSockets },
      },
      ...(config.endpoint ? { endpoint: config.endpoint } : {}),
      ...(config.accessKeyId && config.secretAccessKey
        ? {
            credentials: {
              accessKeyId: config.accessKeyId,
              secretAccessKey: config.secretAccessKey,
            },
          }
        : {}),
    });
  }

  async put(key: string, data: Buffer, contentType: string): Promise<void> {
    await this.client.send(
      new PutObjectCommand({
        Bucket: this.bucket,
        Key: assertKey(key),
        Body: data,
        ContentType: contentType,
        ContentLength: data.length,
      }),
    );
  }

  async get(key: string): Promise<StoredObject | null> {
    try {
      const object = await this.client.send(
        new GetObjectCommand({ Bucket: this.bucket, Key: assertKey(key) }),
      );
      if (!object.Body) return null;
      return {
        body: object.Body as Readable,
        size: object.ContentLength ?? 0,
        contentType: object.ContentType ?? 'application/octet-stream',
        modifiedAt: object.LastModified ?? new Date(0),
      };
    } catch (error) {
      if (error instanceof NoSuchKey) return null;
      if (error instanceof S3ServiceException && error.$metadata.httpStatusCode === 404) {
        return null;
      }
      throw error;
    }
  }

  async directUrl(key: string): Promise<string | null> {
    if (this.presignSeconds === 0) return null;
    return getSignedUrl(
      this.client,
      new GetObjectCommand({ Bucket: this.bucket, Key: assertKey(key) }),
      { expiresIn: this.presignSeconds },
    );
  }

  /**
   * Lists the prefix a page (1,000 keys) at a time and deletes the old ones in one request per
   * page. A bucket lifecycle rule does the same without listing, where the storage offers one.
   */
  async deleteOlderThan(prefix: string, cutoff: Date): Promise<number> {
    let deleted = 0;
    let continuationToken: string | undefined;
    do {
      const page = await this.client.send(
        new ListObjectsV2Command({
          Bucket: this.bucket,
          Prefix: prefix,
          ...(continuationToken ? { ContinuationToken: continuationToken } : {}),
        }),
      );
      const old = (page.Contents ?? []).filter(
        (object) => object.Key && object.LastModified && object.LastModified < cutoff,
      );
      if (old.length > 0) {
        await this.client.send(
          new DeleteObjectsCommand({
            Bucket: this.bucket,
            Delete: { Objects: old.map((object) => ({ Key: object.Key })), Quiet: true },
          }),
        );
        deleted += old.length;
      }
      continuationToken = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (continuationToken);
    return deleted;
  }

  destroy(): void {
    this.client.destroy();
  }
}
