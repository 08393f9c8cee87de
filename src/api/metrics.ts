import type { FastifyInstance } from 'fastify';
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import { Type } from 'typebox';
import type { Database } from '../db/client.ts';
import { generationStatuses, jobKinds, ledgerEntryKinds } from '../db/schema/index.ts';
import { problemResponses } from '../schemas/problem.ts';
import { readMetricsSnapshot } from '../services/metrics-snapshot.ts';

/**
 * Prometheus metrics at GET /metrics (administrators). Each app has a registry of its own (never
 * prom-client's global one), so many apps in one process never share or collide.
 *
 * HTTP requests are counted in this process (every API process is scraped). Everything that must be
 * right across processes — the queue, generations by outcome, provider errors, the ledger's volume —
 * is read from the database at scrape time, in three statements.
 */
export function registerMetrics(app: FastifyInstance, db: Database): Registry {
  const registry = new Registry();
  const labelNames = ['method', 'route', 'status'] as const;
  const requests = new Counter({
    name: 'http_requests_total',
    help: 'HTTP requests answered, by method, route pattern and status',
    labelNames,
    registers: [registry],
  });
  const duration = new Histogram({
    name: 'http_request_duration_seconds',
    help: 'Time to answer an HTTP request, by method, route pattern and status',
    labelNames,
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers: [registry],
  });
  const queueJobs = new Gauge({
    name: 'imagegen_queue_jobs',
    help: 'Jobs in the queue now, by kind and status (pending, running)',
    labelNames: ['kind', 'status'],
    registers: [registry],
  });
  const oldestWaiting = new Gauge({
    name: 'imagegen_queue_oldest_waiting_seconds',
    help: 'Age of the oldest job due and waiting to run, by kind (0: none waits)',
    labelNames: ['kind'],
    registers: [registry],
  });
  const generations = new Gauge({
    name: 'imagegen_generations',
    help: 'Generations ever accepted, by status now (succeeded and failed are the outcomes)',
    labelNames: ['status'],
    registers: [registry],
  });
  const failures = new Gauge({
    name: 'imagegen_generation_failures',
    help: "Failed generations by their model's provider and error code (provider errors, deadlines)",
    labelNames: ['provider', 'code'],
    registers: [registry],
  });
  const ledgerEntries = new Gauge({
    name: 'imagegen_ledger_entries',
    help: 'Ledger entries ever posted, by kind',
    labelNames: ['kind'],
    registers: [registry],
  });
  const ledgerCredits = new Gauge({
    name: 'imagegen_ledger_credits',
    help: 'Sum of the credits of the ledger entries ever posted, by kind (negative: taken)',
    labelNames: ['kind'],
    registers: [registry],
  });

  app.addHook('onResponse', async (request, reply) => {
    // The route's pattern, never the URL: ids and query strings would make a series each.
    const route = request.routeOptions.url ?? 'unmatched';
    const labels = { method: request.method, route, status: String(reply.statusCode) };
    requests.inc(labels);
    duration.observe(labels, reply.elapsedTime / 1000);
  });

  async function readDatabase(): Promise<void> {
    const { queue, outcomes, ledger } = await readMetricsSnapshot(db);
    queueJobs.reset();
    oldestWaiting.reset();
    for (const kind of jobKinds) {
      for (const status of ['pending', 'running']) queueJobs.set({ kind, status }, 0);
      oldestWaiting.set({ kind }, 0);
    }
    for (const row of queue) {
      queueJobs.set({ kind: row.kind, status: row.status }, Number(row.count));
      if (row.oldest !== null)
        oldestWaiting.set({ kind: row.kind }, Math.max(0, Number(row.oldest)));
    }
    generations.reset();
    failures.reset();
    for (const status of generationStatuses) generations.set({ status }, 0);
    for (const row of outcomes) {
      generations.inc({ status: row.status }, Number(row.count));
      if (row.code !== null) {
        failures.inc({ provider: row.provider ?? 'unknown', code: row.code }, Number(row.count));
      }
    }
    ledgerEntries.reset();
    ledgerCredits.reset();
    for (const kind of ledgerEntryKinds) {
      ledgerEntries.set({ kind }, 0);
      ledgerCredits.set({ kind }, 0);
    }
    for (const row of ledger) {
      ledgerEntries.set({ kind: row.kind }, Number(row.count));
      ledgerCredits.set({ kind: row.kind }, Number(row.credits));
    }
  }

  app.get(
    '/metrics',
    {
      config: { access: 'admin' },
      schema: {
        operationId: 'getMetrics',
        summary: 'Prometheus metrics (text exposition format)',
        description:
          "HTTP requests by route pattern and status and their latency; from the database at scrape time: the queue's jobs and oldest wait by kind, generations by status, failures by error code, the ledger's entries and credits by kind.",
        tags: ['admin'],
        response: {
          200: {
            description: 'The Prometheus text exposition format 0.0.4',
            content: { 'text/plain': { schema: Type.String() } },
          },
          ...problemResponses(401, 403, 429),
        },
      },
    },
    async (_request, reply) => {
      await readDatabase();
      const text = await registry.metrics();
      return reply.type(registry.contentType).send(text);
    },
  );
  return registry;
}
