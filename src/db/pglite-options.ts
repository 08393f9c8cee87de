import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { PGlite, type PGliteOptions } from '@electric-sql/pglite';

/**
 * PostgreSQL's page cache inside PGlite. Its default, 128MB, is written in full when the database
 * starts, so every start held 128 MB more than the data needs; one process on a small machine
 * does well with a smaller cache (the operating system caches the files too). bench/start.ts
 * measures it: the warm start's peak RSS went from 406 to about 270 MB.
 */
const sharedBuffers = '16MB';

/**
 * An empty database cluster as initdb makes it, written by the build (scripts/build.mjs) for the
 * installed PGlite. A new data folder starts as a copy of it instead of running initdb, which
 * took seconds and peaked at ~800 MB RSS (bench/start.ts). The same path from src/db/ and from
 * dist/db/, which sit at the same depth.
 */
const template = fileURLToPath(
  new URL('../../dist/pglite-template/pgdata.tar.gz', import.meta.url),
);

/**
 * How the app opens PGlite on `pgDataDir` (undefined: in memory); bench/start-ceiling.ts opens it
 * the same way. Without the template (sources run through tsx before a build) initdb runs.
 */
export function pgliteOptions(pgDataDir: string | undefined): PGliteOptions {
  const options: PGliteOptions = {
    startParams: [...PGlite.defaultStartParams, '-c', `shared_buffers=${sharedBuffers}`],
  };
  const fresh = pgDataDir === undefined || !existsSync(join(pgDataDir, 'PG_VERSION'));
  if (fresh && existsSync(template)) options.loadDataDir = new Blob([readFileSync(template)]);
  return options;
}
