-- The starting catalog a fresh install ships: models, their parameters and prices in credits.
-- Operators change prices by closing a price (valid_to) and opening a new one; this runs once.
WITH model AS (
  INSERT INTO model_catalog (key, display_name, description, provider, provider_model, provider_edit_model, parameters, max_prompt_length, max_references, typical_seconds, sort_order)
  VALUES ('seedream-v4', 'Seedream 4.0', 'ByteDance Seedream 4.0: sharp, detailed images up to 2048 px; edits with up to 10 reference images.', 'wavespeed', 'bytedance/seedream-v4', 'bytedance/seedream-v4/edit', '[{"name":"size","label":"Size","type":"enum","values":["1024*1024","1152*768","1280*720","1280*960","1408*1408","1600*900","1920*1080","2048*2048"],"default":"2048*2048"}]'::jsonb, 2000, 10, 20, 10)
  RETURNING id
)
INSERT INTO model_prices (model_id, conditions, credits)
SELECT model.id, price.conditions, price.credits FROM model, (VALUES
    ('{}'::jsonb, 27)
  ) AS price (conditions, credits);
--> statement-breakpoint
WITH model AS (
  INSERT INTO model_catalog (key, display_name, description, provider, provider_model, provider_edit_model, parameters, max_prompt_length, max_references, typical_seconds, sort_order)
  VALUES ('nano-banana', 'Nano Banana', 'Google Gemini 2.5 Flash Image: fast, follows prompts closely, strong at edits.', 'wavespeed', 'google/nano-banana/text-to-image', 'google/nano-banana/edit', '[{"name":"aspect_ratio","label":"Aspect ratio","type":"enum","values":["1:1","3:2","2:3","3:4","4:3","4:5","5:4","9:16","16:9","21:9"],"default":"1:1"}]'::jsonb, 2000, 10, 15, 20)
  RETURNING id
)
INSERT INTO model_prices (model_id, conditions, credits)
SELECT model.id, price.conditions, price.credits FROM model, (VALUES
    ('{}'::jsonb, 38)
  ) AS price (conditions, credits);
--> statement-breakpoint
WITH model AS (
  INSERT INTO model_catalog (key, display_name, description, provider, provider_model, provider_edit_model, parameters, max_prompt_length, max_references, typical_seconds, sort_order)
  VALUES ('nano-banana-pro', 'Nano Banana Pro', 'Google Gemini 3 Pro Image: the most capable model, legible text, up to 4K.', 'wavespeed', 'google/nano-banana-pro/text-to-image', 'google/nano-banana-pro/edit', '[{"name":"aspect_ratio","label":"Aspect ratio","type":"enum","values":["1:1","3:2","2:3","3:4","4:3","4:5","5:4","9:16","16:9","21:9"],"default":"1:1"},{"name":"resolution","label":"Resolution","type":"enum","values":["1k","2k","4k"],"default":"1k"}]'::jsonb, 2000, 10, 90, 30)
  RETURNING id
)
INSERT INTO model_prices (model_id, conditions, credits)
SELECT model.id, price.conditions, price.credits FROM model, (VALUES
    ('{}'::jsonb, 140),
    ('{"resolution":"4k"}'::jsonb, 240)
  ) AS price (conditions, credits);
--> statement-breakpoint
WITH model AS (
  INSERT INTO model_catalog (key, display_name, description, provider, provider_model, provider_edit_model, parameters, max_prompt_length, max_references, typical_seconds, sort_order)
  VALUES ('gpt-image-1.5', 'GPT Image 1.5', 'OpenAI GPT Image 1.5: precise instruction following; price depends on size and quality.', 'wavespeed', 'openai/gpt-image-1.5/text-to-image', 'openai/gpt-image-1.5/edit', '[{"name":"size","label":"Size","type":"enum","values":["auto","1024*1024","1024*1536","1536*1024"],"default":"1024*1024"},{"name":"quality","label":"Quality","type":"enum","values":["low","medium","high"],"default":"medium"}]'::jsonb, 2000, 10, 60, 40)
  RETURNING id
)
INSERT INTO model_prices (model_id, conditions, credits)
SELECT model.id, price.conditions, price.credits FROM model, (VALUES
    ('{"quality":"low"}'::jsonb, 18),
    ('{"quality":"medium"}'::jsonb, 68),
    ('{"quality":"high"}'::jsonb, 255),
    ('{"quality":"low","size":"1024*1024"}'::jsonb, 12),
    ('{"quality":"medium","size":"1024*1024"}'::jsonb, 45),
    ('{"quality":"high","size":"1024*1024"}'::jsonb, 170)
  ) AS price (conditions, credits);
--> statement-breakpoint
WITH model AS (
  INSERT INTO model_catalog (key, display_name, description, provider, provider_model, provider_edit_model, parameters, max_prompt_length, max_references, typical_seconds, sort_order)
  VALUES ('qwen-image', 'Qwen Image', 'Alibaba Qwen-Image: an inexpensive all-rounder, good with text in images.', 'wavespeed', 'wavespeed-ai/qwen-image/text-to-image', 'wavespeed-ai/qwen-image/edit', '[{"name":"size","label":"Size","type":"enum","values":["1024*1024","1024*1536","1536*1024","1536*1536"],"default":"1024*1024"}]'::jsonb, 2000, 3, 20, 50)
  RETURNING id
)
INSERT INTO model_prices (model_id, conditions, credits)
SELECT model.id, price.conditions, price.credits FROM model, (VALUES
    ('{}'::jsonb, 20)
  ) AS price (conditions, credits);
