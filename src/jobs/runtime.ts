import type { Config } from '../core/config.ts';
import type { Logger } from '../core/logger.ts';
import type { DatabaseHandle } from '../db/client.ts';
import { TelegramDelivery } from '../delivery/telegram.ts';
import { TelegramFiles } from '../delivery/telegram-files.ts';
import { WebhookDelivery } from '../delivery/webhook.ts';
import type { PipelineContext } from '../services/context.ts';
import type { ResultStore } from '../storage/results.ts';
import type { DeliveryChannels } from './types.ts';
import { JobWorker } from './worker.ts';

/** The delivery channels the configuration enables. */
function deliveryChannelsFromConfig(config: Config): DeliveryChannels {
  const token = config.telegramBotToken;
  const apiRoot = config.delivery.telegramApiRoot;
  const { webhookUrl, webhookSecret } = config.delivery;
  return {
    telegram: token ? new TelegramDelivery({ botToken: token, apiRoot }) : null,
    telegramFiles: token ? new TelegramFiles(token, apiRoot) : null,
    webhook:
      webhookUrl && webhookSecret
        ? new WebhookDelivery({ url: webhookUrl, secret: webhookSecret })
        : null,
  };
}

/** Starts a worker on this database with the configured providers and delivery channels. */
export async function startWorker(options: {
  ctx: PipelineContext;
  database: DatabaseHandle;
  store: ResultStore;
  logger: Logger;
  delivery?: DeliveryChannels;
}): Promise<JobWorker> {
  const worker = new JobWorker({
    ...options,
    delivery: options.delivery ?? deliveryChannelsFromConfig(options.ctx.config),
  });
  await worker.start();
  return worker;
}
