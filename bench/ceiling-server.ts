// The ceiling for bench/http.ts: the same paths as our API, each a bare Fastify route (no plugins,
// no logger, no schemas) sending the SAME SQL text through a plain pg.Pool and answering its rows.
// Whatever our API does on top of that (auth, rate limit, helmet, validation, Drizzle, logging) is
// what the ratio measures. bench/http.ts starts it as its own process:
//
//   CEILING_DATABASE_URL=postgres://… CEILING_PORT=… CEILING_QUERIES='{"balance":"select …",…}' \
//     node --import tsx bench/ceiling-server.ts
//
// CEILING_QUERIES holds the SQL our services send, captured by bench/http.ts from the driver.
import Fastify from 'fastify';
import pg from 'pg';
import { syncUserParameters, type TelegramUserInput } from '../src/services/users.ts';

export interface CeilingQueries {
  /** $1 = telegram_id */
  readonly balance: string;
  /** $1 = telegram_id */
  readonly trial: string;
  /** no parameters */
  readonly models: string;
  /** parameters: syncUserParameters(body), the same function our service uses */
  readonly sync: string;
}

interface TelegramIdParams {
  telegram_id: string;
}

function requiredEnv(name: string): string {
  const value = process.env[name];
  if (value === undefined || value === '') throw new Error(`${name} must be set`);
  return value;
}

function parseQueries(json: string): CeilingQueries {
  const parsed: unknown = JSON.parse(json);
  const keys = ['balance', 'trial', 'models', 'sync'] as const;
  if (typeof parsed !== 'object' || parsed === null)
    throw new Error('CEILING_QUERIES: not an object');
  const record = parsed as Record<string, unknown>;
  for (const key of keys) {
    if (typeof record[key] !== 'string') throw new Error(`CEILING_QUERIES.${key} must be a string`);
  }
  return parsed as CeilingQueries;
}

const queries = parseQueries(requiredEnv('CEILING_QUERIES'));
const pool = new pg.Pool({
  connectionString: requiredEnv('CEILING_DATABASE_URL'),
  max: Number(process.env.CEILING_POOL_SIZE ?? '10'),
  application_name: 'imagegen-bench-ceiling',
});

// As in our server: an idle connection failing must not kill the process mid-benchmark.
pool.on('error', (error) => process.stderr.write(`idle connection failed: ${error.message}\n`));

const app = Fastify({ logger: false });

app.get<{ Params: TelegramIdParams }>('/api/v1/users/:telegram_id/balance', async (request) => {
  const { rows } = await pool.query(queries.balance, [Number(request.params.telegram_id)]);
  return rows;
});

app.get<{ Params: TelegramIdParams }>('/api/v1/users/:telegram_id/trial', async (request) => {
  const { rows } = await pool.query(queries.trial, [Number(request.params.telegram_id)]);
  return rows;
});

app.get('/api/v1/models', async () => {
  const { rows } = await pool.query(queries.models);
  return rows;
});

app.post<{ Body: TelegramUserInput }>('/api/v1/users/sync', async (request) => {
  const body = request.body;
  const { rows } = await pool.query(queries.sync, syncUserParameters(body));
  return rows;
});

async function stop(): Promise<void> {
  await app.close();
  await pool.end();
  process.exit(0);
}
process.once('SIGTERM', () => void stop());
process.once('SIGINT', () => void stop());

await app.listen({
  host: process.env.CEILING_HOST ?? '127.0.0.1',
  port: Number(requiredEnv('CEILING_PORT')),
});
