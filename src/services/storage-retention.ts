import {
  REFERENCES_PREFIX,
  RESULTS_PREFIX,
  type ResultStore,
  UPLOADS_PREFIX,
} from '../storage/results.ts';
import type { ServiceContext } from './context.ts';
import { currentSettings } from './settings.ts';

const DAY_MS = 86_400_000;

/** How often one process sweeps its store: a sweep lists the objects, which costs on S3. */
const SWEEP_INTERVAL_MS = 10 * 60_000;
const lastSweep = new WeakMap<ResultStore, number>();

export interface SweepCount {
  results: number;
  references: number;
}

/**
 * Deletes result images and uploaded references older than RESULT_RETENTION_DAYS (0 = kept
 * forever; `results` counts both) and references we
 * served to providers once their URLs have expired (REFERENCE_URL_MINUTES), in either backend.
 * Answers null when this process swept less than SWEEP_INTERVAL_MS ago. A deleted result's row
 * stays (the generation's history); its image then answers 404.
 */
export async function sweepStoredObjects(
  ctx: ServiceContext,
  store: ResultStore,
  now = Date.now(),
): Promise<SweepCount | null> {
  const previous = lastSweep.get(store);
  if (previous !== undefined && now - previous < SWEEP_INTERVAL_MS) return null;
  lastSweep.set(store, now);
  const retentionDays = (await currentSettings(ctx)).RESULT_RETENTION_DAYS;
  const cutoff = new Date(now - retentionDays * DAY_MS);
  const results =
    retentionDays > 0
      ? (await store.deleteOlderThan(RESULTS_PREFIX, cutoff)) +
        (await store.deleteOlderThan(UPLOADS_PREFIX, cutoff))
      : 0;
  const references = await store.deleteOlderThan(
    REFERENCES_PREFIX,
    new Date(now - ctx.config.storage.referenceUrlMinutes * 60_000),
  );
  return { results, references };
}
