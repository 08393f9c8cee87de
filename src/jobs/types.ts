import type { Logger } from '../core/logger.ts';
import type { GroupCommit } from '../db/group-commit.ts';
import type { StepRecord } from '../db/job-queue.ts';
import type { TelegramDelivery } from '../delivery/telegram.ts';
import type { TelegramFiles } from '../delivery/telegram-files.ts';
import type { WebhookDelivery } from '../delivery/webhook.ts';
import type { PipelineContext } from '../services/context.ts';
import type { Success } from '../services/generation-outcomes.ts';
import type { ResultStore } from '../storage/results.ts';

/** The ways this deployment hands results out; null where not configured. */
export interface DeliveryChannels {
  telegram: TelegramDelivery | null;
  webhook: WebhookDelivery | null;
  /** Downloads Telegram files given as references (needs the bot token). */
  telegramFiles: TelegramFiles | null;
}

/** What a job handler gets: the services, and a signal that fires if the job is no longer ours. */
export interface JobEnvironment {
  ctx: PipelineContext;
  store: ResultStore;
  delivery: DeliveryChannels;
  logger: Logger;
  /** The worker's group commits: concurrent jobs share one statement and one commit. */
  steps: GroupCommit<StepRecord, boolean>;
  successes: GroupCommit<Success, boolean>;
}
