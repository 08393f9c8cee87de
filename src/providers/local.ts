import { createHash } from 'node:crypto';
import { drawPrompt } from './local-drawing.ts';
import {
  imageFromReference,
  localToolOperation,
  runLocalTool,
  type ToolOutput,
} from './local-tools.ts';
import type { ImageProvider, ProviderRequest, ProviderStatus } from './types.ts';

/**
 * The offline provider: draws a PNG of the requested shape with the prompt written on it
 * (local-drawing.ts), so the whole pipeline runs on a fresh machine with no keys. The same
 * request always gives the same image.
 * Nothing is kept in memory: the job id encodes the request, so a process that restarted draws
 * the image again from it. The id also names the generation, because a provider job id is unique
 * per submission: two generations of the same prompt (a "regenerate") are two jobs.
 *
 * Tools (upscale, denoise…; see local-tools.ts) work on the image they are given, which a job id
 * cannot carry: the work is done when the job is submitted and its result kept in this process
 * (the newest TOOL_RESULTS_KEPT, for TOOL_RESULT_TTL_MS), where the status query finds it. A
 * process that restarts in between has lost it: the job fails and is given back (retry it).
 */
export class LocalProvider implements ImageProvider {
  readonly name: string;
  readonly acceptsWebhooks = false;

  /** A name other than `local` lets tests run several, each claimed by its own worker only. */
  constructor(options: { name?: string } = {}) {
    this.name = options.name ?? 'local';
  }

  private readonly toolResults = new Map<string, { output: ToolOutput; expiresAt: number }>();

  async submit(request: ProviderRequest): Promise<{ providerJobId: string }> {
    if (request.kind === 'tool') return this.submitTool(request);
    const encoded = Buffer.from(
      JSON.stringify({
        g: request.generationId,
        p: request.prompt,
        a: request.parameters,
        m: request.model,
      }),
    ).toString('base64url');
    return { providerJobId: `local-${encoded}` };
  }

  private async submitTool(request: ProviderRequest): Promise<{ providerJobId: string }> {
    const input = imageFromReference(request.referenceUrls[0]);
    const operation = localToolOperation(request.model, request.parameters);
    const output = await runLocalTool(operation, input, request.parameters);
    const providerJobId = `local-tool-${createHash('sha256')
      .update(JSON.stringify({ g: request.generationId, m: request.model, a: request.parameters }))
      .update(input)
      .digest('base64url')}`;
    const now = Date.now();
    for (const [id, kept] of this.toolResults) {
      if (kept.expiresAt <= now || this.toolResults.size >= TOOL_RESULTS_KEPT) {
        this.toolResults.delete(id);
      }
    }
    this.toolResults.set(providerJobId, { output, expiresAt: now + TOOL_RESULT_TTL_MS });
    return { providerJobId };
  }

  private toolStatus(providerJobId: string): ProviderStatus {
    const kept = this.toolResults.get(providerJobId);
    if (!kept) {
      return {
        state: 'failed',
        error: 'the offline provider no longer holds this result (its process restarted)',
        retryable: false,
      };
    }
    const { data, mimeType, width, height } = kept.output;
    return {
      state: 'succeeded',
      images: [{ data, mimeType, width, height }],
      metadata: { provider: 'local', tool: true },
    };
  }

  async status(providerJobId: string): Promise<ProviderStatus> {
    if (providerJobId.startsWith('local-tool-')) return this.toolStatus(providerJobId);
    const decoded = decodeJob(providerJobId);
    if (!decoded) return { state: 'failed', error: 'unknown local job id', retryable: false };
    if (/\bfail\b/i.test(decoded.p)) {
      return {
        state: 'failed',
        error: 'the local provider refuses prompts with the word "fail"',
        retryable: false,
      };
    }
    // The image depends on the request only, not on which generation asked for it.
    const { data, width, height, seed } = await drawPrompt({
      prompt: decoded.p,
      model: decoded.m,
      parameters: decoded.a,
    });
    return {
      state: 'succeeded',
      images: [{ data, mimeType: 'image/png', width, height, seed }],
      metadata: { provider: 'local', model: decoded.m },
    };
  }
}

/** Tool results kept for their status query: a few, briefly (it follows the submission at once). */
const TOOL_RESULTS_KEPT = 64;
const TOOL_RESULT_TTL_MS = 15 * 60_000;

function decodeJob(id: string): { p: string; a: Record<string, string>; m: string } | null {
  if (!id.startsWith('local-')) return null;
  try {
    return JSON.parse(Buffer.from(id.slice(6), 'base64url').toString());
  } catch {
    return null;
  }
}
