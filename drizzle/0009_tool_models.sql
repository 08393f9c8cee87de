-- Tools: catalog models that work on the one image a user sends (upscale, remove a watermark,
-- denoise, restore, enhance) instead of drawing from a prompt. `kind` tells them apart; a tool's
-- prompt may be empty and it takes exactly one reference image (the API checks both).
ALTER TABLE "model_catalog" ADD COLUMN "kind" text DEFAULT 'image' NOT NULL;--> statement-breakpoint
ALTER TABLE "model_catalog" ADD CONSTRAINT "model_catalog_kind_valid" CHECK ("model_catalog"."kind" IN ('image', 'tool'));--> statement-breakpoint
ALTER TABLE "model_catalog" ADD CONSTRAINT "model_catalog_tool_takes_an_image" CHECK ("model_catalog"."kind" <> 'tool' OR "model_catalog"."max_references" >= 1);--> statement-breakpoint
-- The five tools, all on WaveSpeedAI; each takes its image as `image` and the parameters below
-- under the same names (src/providers/wavespeed.ts). Display names are English: the bot localises
-- labels by key.
WITH model AS (
  INSERT INTO model_catalog (key, kind, display_name, description, provider, provider_model, parameters, max_prompt_length, max_references, typical_seconds, sort_order)
  VALUES ('upscale', 'tool', 'Upscale', 'Enlarges a photo to 2K, 4K or 8K, adding detail (WaveSpeed Ultimate Image Upscaler).', 'wavespeed', 'wavespeed-ai/ultimate-image-upscaler', '[{"name":"target_resolution","label":"Resolution","type":"enum","values":["2k","4k","8k"],"default":"4k"}]'::jsonb, 2000, 1, 30, 100)
  RETURNING id
)
INSERT INTO model_prices (model_id, conditions, credits)
SELECT model.id, '{}'::jsonb, 60 FROM model;
--> statement-breakpoint
WITH model AS (
  INSERT INTO model_catalog (key, kind, display_name, description, provider, provider_model, parameters, max_prompt_length, max_references, typical_seconds, sort_order)
  VALUES ('remove-watermark', 'tool', 'Watermark removal', 'Removes visible text and logo watermarks from a photo (WaveSpeed Image Watermark Remover).', 'wavespeed', 'wavespeed-ai/image-watermark-remover', '[]'::jsonb, 2000, 1, 15, 110)
  RETURNING id
)
INSERT INTO model_prices (model_id, conditions, credits)
SELECT model.id, '{}'::jsonb, 12 FROM model;
--> statement-breakpoint
WITH model AS (
  INSERT INTO model_catalog (key, kind, display_name, description, provider, provider_model, parameters, max_prompt_length, max_references, typical_seconds, sort_order)
  VALUES ('denoise', 'tool', 'Denoise', 'Removes grain and high-ISO noise while keeping detail (Topaz Denoise).', 'wavespeed', 'topaz/image/denoise', '[{"name":"model","label":"Strength","type":"enum","values":["Normal","Strong","Extreme"],"default":"Normal"}]'::jsonb, 2000, 1, 20, 120)
  RETURNING id
)
INSERT INTO model_prices (model_id, conditions, credits)
SELECT model.id, '{}'::jsonb, 20 FROM model;
--> statement-breakpoint
WITH model AS (
  INSERT INTO model_catalog (key, kind, display_name, description, provider, provider_model, parameters, max_prompt_length, max_references, typical_seconds, sort_order)
  VALUES ('restore', 'tool', 'Restore', 'Removes dust and scratches from old and scanned photos (Topaz Restore).', 'wavespeed', 'topaz/image/restore', '[{"name":"model","label":"Model","type":"enum","values":["Dust-Scratch","Dust-Scratch V2"],"default":"Dust-Scratch"}]'::jsonb, 2000, 1, 20, 130)
  RETURNING id
)
INSERT INTO model_prices (model_id, conditions, credits)
SELECT model.id, '{}'::jsonb, 20 FROM model;
--> statement-breakpoint
WITH model AS (
  INSERT INTO model_catalog (key, kind, display_name, description, provider, provider_model, parameters, max_prompt_length, max_references, typical_seconds, sort_order)
  VALUES ('enhance', 'tool', 'Enhance', 'Sharpens and cleans up a photo: detail, noise and compression artefacts (Topaz Enhance).', 'wavespeed', 'topaz/image/enhance', '[]'::jsonb, 2000, 1, 20, 140)
  RETURNING id
)
INSERT INTO model_prices (model_id, conditions, credits)
SELECT model.id, '{}'::jsonb, 30 FROM model;
