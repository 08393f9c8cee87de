import { PGlite, type PGliteOptions } from '@electric-sql/pglite';

/**
 * PostgreSQL's page cache inside PGlite. Its default, 128MB, is written in full when the database
 * starts, so every start held 128 MB more than the data needs; one process on a small machine
 * does well with a smaller cache (the operating system caches the files too). bench/start.ts
 * measures it: the warm start's peak RSS went from 406 to about 270 MB.
 */
const sharedBuffers = '16MB';

/** How the app opens PGlite; bench/start-ceiling.ts opens it the same way. */
export function pgliteOptions(): PGliteOptions {
  return { startParams: [...PGlite.defaultStartParams, '-c', `shared_buffers=${sharedBuffers}`] };
}
