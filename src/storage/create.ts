import type { Config } from '../core/config.ts';
import { LocalResultStore } from './local.ts';
import type { ResultStore } from './results.ts';

/**
 * S3 when S3_BUCKET is set, else the folder under DATA_DIR. The AWS SDK is loaded only for S3:
 * it costs a process ~26 MB and ~0.2 s to load, and prints a Node version notice.
 */
export async function createResultStore(config: Config): Promise<ResultStore> {
  const s3 = config.storage.s3;
  if (!s3) return new LocalResultStore(config.dataDir);
  const { S3ResultStore } = await import('./s3.ts');
  return new S3ResultStore(s3, config.worker.concurrency);
}
