import type { Config } from '../core/config.ts';
import { LocalResultStore } from './local.ts';
import type { ResultStore } from './results.ts';
import { S3ResultStore } from './s3.ts';

/** S3 when S3_BUCKET is set, else the folder under DATA_DIR. */
export function createResultStore(config: Config): ResultStore {
  const s3 = config.storage.s3;
  return s3
    ? new S3ResultStore(s3, config.worker.concurrency)
    : new LocalResultStore(config.dataDir);
}
