// The ceiling for bench/start.ts: the least a process can do and still answer /api/v1/health from
// the same database — node, Fastify without plugins, and one `SELECT 1` through PGlite (opened
// exactly as the app opens it, on the same data folder) or through a plain pg.Pool. What our API
// adds to start time and memory on top of that (its modules, migrations check, the worker, the
// rate limit, the catalog, sharp) is what the ratio measures. bench/start.ts compiles it to
// JavaScript and starts it as its own process, as it starts ours:
//
//   CEILING_PORT=… CEILING_DATA_DIR=/tmp/x        node start-ceiling.mjs   (embedded)
//   CEILING_PORT=… CEILING_DATABASE_URL=postgres://…  node start-ceiling.mjs
import { mkdirSync } from 'node:fs';
import { PGlite } from '@electric-sql/pglite';
import Fastify from 'fastify';
import pg from 'pg';
import { pgliteOptions } from '../src/db/pglite-options.ts';

const port = Number(process.env.CEILING_PORT);
const databaseUrl = process.env.CEILING_DATABASE_URL ?? '';
const dataDir = process.env.CEILING_DATA_DIR ?? '';

let selectOne: () => Promise<unknown>;
let close: () => Promise<void>;
if (databaseUrl !== '') {
  const pool = new pg.Pool({ connectionString: databaseUrl, max: 10 });
  selectOne = () => pool.query('SELECT 1');
  close = () => pool.end();
} else if (dataDir !== '') {
  mkdirSync(dataDir, { recursive: true });
  const pglite = new PGlite(`${dataDir}/pglite`, pgliteOptions(`${dataDir}/pglite`));
  await pglite.waitReady;
  selectOne = () => pglite.query('SELECT 1');
  close = () => pglite.close();
} else {
  throw new Error('set CEILING_DATABASE_URL or CEILING_DATA_DIR');
}

const app = Fastify({ logger: false });
app.get('/api/v1/health', async () => {
  await selectOne();
  return { status: 'ok' };
});
await app.listen({ host: '127.0.0.1', port });

process.once('SIGTERM', () => {
  void app
    .close()
    .then(close)
    .then(() => process.exit(0));
});
