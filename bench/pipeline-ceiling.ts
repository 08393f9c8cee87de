// The ceiling for bench/pipeline.ts: the least any durable submit → done pipeline must do, with no
// credits, validation, references or results. A bare Fastify route inserts one job row (one
// commit) and answers 202; a drainer in the same process claims due rows with SKIP LOCKED in
// batches and marks each done with its own UPDATE (one commit per job, as a worker finishing jobs
// one by one must). bench/pipeline.ts starts it as its own process, like our API and worker:
//
//   CEILING_DATABASE_URL=postgres://… CEILING_PORT=… node --import tsx bench/pipeline-ceiling.ts
import Fastify from 'fastify';
import pg from 'pg';

function requiredEnv(name: string): string {
  const value = process.env[name];
  if (value === undefined || value === '') throw new Error(`${name} must be set`);
  return value;
}

const pool = new pg.Pool({
  connectionString: requiredEnv('CEILING_DATABASE_URL'),
  max: Number(process.env.CEILING_POOL_SIZE ?? '20'),
  application_name: 'imagegen-bench-pipeline-ceiling',
});
pool.on('error', (error) => process.stderr.write(`idle connection failed: ${error.message}\n`));

await pool.query(`CREATE TABLE IF NOT EXISTS ceiling_jobs (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  telegram_id bigint NOT NULL,
  prompt text NOT NULL,
  status text NOT NULL DEFAULT 'pending',
  created_at timestamptz NOT NULL DEFAULT now(),
  done_at timestamptz)`);
await pool.query(
  `CREATE INDEX IF NOT EXISTS ceiling_jobs_pending ON ceiling_jobs (id) WHERE status = 'pending'`,
);

const app = Fastify({ logger: false });
app.post<{ Body: { telegram_id: number; prompt: string } }>(
  '/api/v1/generations',
  async (request, reply) => {
    const { rows } = await pool.query(
      'INSERT INTO ceiling_jobs (telegram_id, prompt) VALUES ($1, $2) RETURNING id, status',
      [request.body.telegram_id, request.body.prompt],
    );
    return reply.code(202).send(rows[0]);
  },
);

const DRAIN_BATCH = 256;
const DRAIN_CONCURRENCY = 32;
let stopping = false;

async function drain(): Promise<void> {
  while (!stopping) {
    const { rows } = await pool.query<{ id: string }>(
      `UPDATE ceiling_jobs SET status = 'running' WHERE id IN (
         SELECT id FROM ceiling_jobs WHERE status = 'pending' ORDER BY id
         LIMIT ${DRAIN_BATCH} FOR UPDATE SKIP LOCKED) RETURNING id`,
    );
    if (rows.length === 0) {
      await new Promise((resolve) => setTimeout(resolve, 20));
      continue;
    }
    let next = 0;
    await Promise.all(
      Array.from({ length: DRAIN_CONCURRENCY }, async () => {
        for (let row = rows[next++]; row; row = rows[next++]) {
          await pool.query(
            `UPDATE ceiling_jobs SET status = 'succeeded', done_at = now() WHERE id = $1`,
            [row.id],
          );
        }
      }),
    );
  }
}

const draining = drain();
process.once('SIGTERM', () => {
  stopping = true;
  void draining.then(async () => {
    await app.close();
    await pool.end();
    process.exit(0);
  });
});
await app.listen({ port: Number(requiredEnv('CEILING_PORT')), host: '127.0.0.1' });
process.stdout.write('ceiling listening\n');
