CREATE TABLE "model_routes" (
	"id" bigint PRIMARY KEY GENERATED ALWAYS AS IDENTITY (sequence name "model_routes_id_seq" INCREMENT BY 1 MINVALUE 1 MAXVALUE 9223372036854775807 START WITH 1 CACHE 1),
	"model_id" bigint NOT NULL,
	"priority" integer NOT NULL,
	"provider" text NOT NULL,
	"provider_model" text NOT NULL,
	"inputs" jsonb DEFAULT '{}'::jsonb NOT NULL,
	"provider_edit_model" text,
	"edit_inputs" jsonb DEFAULT '{}'::jsonb NOT NULL,
	"reference_field" text,
	"reference_arity" text DEFAULT 'array' NOT NULL,
	"max_references" integer DEFAULT 0 NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "model_routes_reference_arity_valid" CHECK ("model_routes"."reference_arity" IN ('string', 'array')),
	CONSTRAINT "model_routes_max_references_not_negative" CHECK ("model_routes"."max_references" >= 0),
	CONSTRAINT "model_routes_string_takes_one" CHECK ("model_routes"."reference_arity" = 'array' OR "model_routes"."max_references" <= 1),
	CONSTRAINT "model_routes_references_need_a_field" CHECK ("model_routes"."max_references" = 0 OR "model_routes"."reference_field" IS NOT NULL),
	CONSTRAINT "model_routes_inputs_object" CHECK (jsonb_typeof("model_routes"."inputs") = 'object'),
	CONSTRAINT "model_routes_edit_inputs_object" CHECK (jsonb_typeof("model_routes"."edit_inputs") = 'object')
);
--> statement-breakpoint
ALTER TABLE "model_routes" ADD CONSTRAINT "model_routes_model_id_model_catalog_id_fk" FOREIGN KEY ("model_id") REFERENCES "public"."model_catalog"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
CREATE UNIQUE INDEX "model_routes_priority_uq" ON "model_routes" USING btree ("model_id","priority");--> statement-breakpoint
CREATE UNIQUE INDEX "model_routes_provider_uq" ON "model_routes" USING btree ("model_id","provider");--> statement-breakpoint
-- Every model's provider, model(s) and request shape become its first route. What a model's
-- references are sent as is a fact of each provider model (its documentation), not of the adapter:
-- tools take one `image` URL; WaveSpeed's image models a list `images`; Replicate's `image_input`.
INSERT INTO "model_routes" ("model_id", "priority", "provider", "provider_model", "provider_edit_model",
  "reference_field", "reference_arity", "max_references")
SELECT m."id", 1, m."provider", m."provider_model", m."provider_edit_model",
  CASE WHEN m."max_references" = 0 THEN NULL
       WHEN m."kind" = 'tool' THEN 'image'
       WHEN m."provider" = 'replicate' THEN 'image_input'
       ELSE 'images' END,
  CASE WHEN m."kind" = 'tool' THEN 'string' ELSE 'array' END,
  CASE WHEN m."kind" = 'tool' THEN 1 ELSE m."max_references" END
FROM "model_catalog" m;--> statement-breakpoint
-- wavespeed-ai/qwen-image/edit takes one `image` (a string) and no `size`
-- (https://wavespeed.ai/docs/docs-api/wavespeed-ai/qwen-image-edit).
UPDATE "model_routes" r SET "reference_field" = 'image', "reference_arity" = 'string', "max_references" = 1,
  "edit_inputs" = '{"size": null}'::jsonb
FROM "model_catalog" m
WHERE m."id" = r."model_id" AND r."provider" = 'wavespeed' AND r."provider_edit_model" = 'wavespeed-ai/qwen-image/edit';--> statement-breakpoint
UPDATE "model_catalog" SET "max_references" = 1, "updated_at" = now()
WHERE "key" = 'qwen-image' AND "max_references" > 1;--> statement-breakpoint
-- Seedream 4.0 documents 1024 to 4096 pixels per side
-- (https://wavespeed.ai/docs/docs-api/bytedance/bytedance-seedream-v4): ByteDance's own sizes for
-- each aspect ratio at 1K, 2K and 4K instead of 1152*768, 1280*720, 1280*960 and 1600*900, which
-- fall below it. Its price has no size condition, so no price changes.
UPDATE "model_catalog" SET "parameters" = '[{"name":"size","label":"Size","type":"enum","values":["1024*1024","2048*2048","2304*1728","1728*2304","2560*1440","1440*2560","2496*1664","1664*2496","3024*1296","4096*4096"],"default":"2048*2048"}]'::jsonb,
  "updated_at" = now()
WHERE "key" = 'seedream-v4' AND "parameters" = '[{"name":"size","label":"Size","type":"enum","values":["1024*1024","1152*768","1280*720","1280*960","1408*1408","1600*900","1920*1080","2048*2048"],"default":"2048*2048"}]'::jsonb;--> statement-breakpoint
-- GPT Image 1.5 (text-to-image and edit) documents three sizes and no `auto`
-- (https://wavespeed.ai/docs/docs-api/openai/openai-gpt-image-1.5-edit); no price names `auto`.
UPDATE "model_catalog" SET "parameters" = '[{"name":"size","label":"Size","type":"enum","values":["1024*1024","1024*1536","1536*1024"],"default":"1024*1024"},{"name":"quality","label":"Quality","type":"enum","values":["low","medium","high"],"default":"medium"}]'::jsonb,
  "updated_at" = now()
WHERE "key" = 'gpt-image-1.5' AND "parameters" = '[{"name":"size","label":"Size","type":"enum","values":["auto","1024*1024","1024*1536","1536*1024"],"default":"1024*1024"},{"name":"quality","label":"Quality","type":"enum","values":["low","medium","high"],"default":"medium"}]'::jsonb;--> statement-breakpoint
-- Nano Banana on Replicate as the second route: one model for text and edits, references in
-- `image_input` (a list), the same aspect ratios (https://replicate.com/google/nano-banana/api).
INSERT INTO "model_routes" ("model_id", "priority", "provider", "provider_model", "reference_field",
  "reference_arity", "max_references")
SELECT m."id", 2, 'replicate', 'google/nano-banana', 'image_input', 'array', m."max_references"
FROM "model_catalog" m
WHERE m."key" = 'nano-banana' AND NOT EXISTS (
  SELECT 1 FROM "model_routes" r WHERE r."model_id" = m."id" AND r."provider" = 'replicate');--> statement-breakpoint
ALTER TABLE "model_catalog" DROP COLUMN "provider";--> statement-breakpoint
ALTER TABLE "model_catalog" DROP COLUMN "provider_model";--> statement-breakpoint
ALTER TABLE "model_catalog" DROP COLUMN "provider_edit_model";