import { randomUUID } from 'node:crypto';
import { encodePng } from '../../src/providers/png.ts';
import {
  type ImageProvider,
  ProviderError,
  type ProviderRequest,
  type ProviderStatus,
} from '../../src/providers/types.ts';

/**
 * An in-memory image provider whose behaviour each test scripts through the prompt's first word,
 * standing in for a real provider's documented outcomes:
 * - `instant …`        succeeds on the first status query;
 * - `slow:N …`         pending for N status queries, then succeeds;
 * - `never …`          pending forever (until `finish(id)` is called);
 * - `refuse …`         the job fails at the provider (a content filter, an invalid input);
 * - `reject …`         submit is refused for good (HTTP 4xx);
 * - `flaky:N …`        submit fails N times with a retryable error (HTTP 503), then works.
 * Unique names keep each test's jobs to its own workers when tests share a database.
 */
export class ScriptedProvider implements ImageProvider {
  readonly name = `scripted-${randomUUID().slice(0, 8)}`;
  readonly acceptsWebhooks = false;
  readonly submissions: ProviderRequest[] = [];
  statusQueries = 0;
  /** While true, status queries never answer (a provider or network that hangs). */
  hangStatus = false;
  /** Each status query takes this long (a slow provider). */
  statusDelayMs = 0;
  /** The most calls this provider had in flight at once. */
  maxInFlight = 0;
  private inFlight = 0;
  private readonly jobs = new Map<
    string,
    { request: ProviderRequest; polls: number; finished: boolean }
  >();
  private flakyFailures = new Map<string, number>();

  async submit(request: ProviderRequest): Promise<{ providerJobId: string }> {
    const [word] = request.prompt.split(' ');
    if (word === 'reject') throw new ProviderError('HTTP 400: invalid input', false);
    const flaky = /^flaky:(\d+)$/.exec(word ?? '');
    if (flaky) {
      const failed = this.flakyFailures.get(request.generationId) ?? 0;
      if (failed < Number(flaky[1])) {
        this.flakyFailures.set(request.generationId, failed + 1);
        throw new ProviderError('HTTP 503: overloaded', true, 0);
      }
    }
    this.submissions.push(request);
    const id = `job-${randomUUID()}`;
    this.jobs.set(id, { request, polls: 0, finished: false });
    return { providerJobId: id };
  }

  async status(providerJobId: string): Promise<ProviderStatus> {
    this.statusQueries++;
    if (this.hangStatus) return new Promise<never>(() => undefined);
    this.inFlight++;
    this.maxInFlight = Math.max(this.maxInFlight, this.inFlight);
    try {
      if (this.statusDelayMs > 0)
        await new Promise((resolve) => setTimeout(resolve, this.statusDelayMs));
      return this.answer(providerJobId);
    } finally {
      this.inFlight--;
    }
  }

  private answer(providerJobId: string): ProviderStatus {
    const job = this.jobs.get(providerJobId);
    if (!job) throw new ProviderError('HTTP 404: unknown job', false);
    job.polls++;
    const [word] = job.request.prompt.split(' ');
    if (word === 'refuse') return { state: 'failed', error: 'content policy', retryable: false };
    const slow = /^slow:(\d+)$/.exec(word ?? '');
    const done =
      job.finished || (word === 'never' ? false : slow ? job.polls > Number(slow[1]) : true);
    if (!done) return { state: 'pending' };
    return {
      state: 'succeeded',
      images: [
        {
          data: encodePng(4, 4, new Uint8Array(48).fill(200)),
          mimeType: 'image/png',
          width: 4,
          height: 4,
          seed: 7,
        },
      ],
      metadata: { provider: this.name },
    };
  }

  /** The provider finishes a `never` job (e.g. just as our deadline passes). */
  finish(generationId: string): void {
    for (const job of this.jobs.values()) {
      if (job.request.generationId === generationId) job.finished = true;
    }
  }

  submissionsFor(generationId: string): number {
    return this.submissions.filter((request) => request.generationId === generationId).length;
  }
}
