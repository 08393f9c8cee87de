CREATE TABLE "model_catalog" (
	"id" bigint PRIMARY KEY GENERATED ALWAYS AS IDENTITY (sequence name "model_catalog_id_seq" INCREMENT BY 1 MINVALUE 1 MAXVALUE 9223372036854775807 START WITH 1 CACHE 1),
	"key" text NOT NULL,
	"display_name" text NOT NULL,
	"description" text DEFAULT '' NOT NULL,
	"provider" text NOT NULL,
	"provider_model" text NOT NULL,
	"provider_edit_model" text,
	"parameters" jsonb DEFAULT '[]'::jsonb NOT NULL,
	"max_prompt_length" integer DEFAULT 2000 NOT NULL,
	"max_references" integer DEFAULT 0 NOT NULL,
	"typical_seconds" integer,
	"is_active" boolean DEFAULT true NOT NULL,
	"sort_order" integer DEFAULT 0 NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "model_catalog_key_unique" UNIQUE("key"),
	CONSTRAINT "model_catalog_key_format" CHECK ("model_catalog"."key" ~ '^[a-z0-9][a-z0-9._-]{0,63}$'),
	CONSTRAINT "model_catalog_max_prompt_length_positive" CHECK ("model_catalog"."max_prompt_length" > 0),
	CONSTRAINT "model_catalog_max_references_not_negative" CHECK ("model_catalog"."max_references" >= 0)
);
--> statement-breakpoint
CREATE TABLE "model_prices" (
	"id" bigint PRIMARY KEY GENERATED ALWAYS AS IDENTITY (sequence name "model_prices_id_seq" INCREMENT BY 1 MINVALUE 1 MAXVALUE 9223372036854775807 START WITH 1 CACHE 1),
	"model_id" bigint NOT NULL,
	"conditions" jsonb DEFAULT '{}'::jsonb NOT NULL,
	"credits" integer NOT NULL,
	"valid_from" timestamp with time zone DEFAULT now() NOT NULL,
	"valid_to" timestamp with time zone,
	CONSTRAINT "model_prices_credits_positive" CHECK ("model_prices"."credits" > 0),
	CONSTRAINT "model_prices_conditions_object" CHECK (jsonb_typeof("model_prices"."conditions") = 'object'),
	CONSTRAINT "model_prices_valid_range" CHECK ("model_prices"."valid_to" IS NULL OR "model_prices"."valid_to" > "model_prices"."valid_from")
);
--> statement-breakpoint
CREATE TABLE "generation_jobs" (
	"id" bigint PRIMARY KEY GENERATED ALWAYS AS IDENTITY (sequence name "generation_jobs_id_seq" INCREMENT BY 1 MINVALUE 1 MAXVALUE 9223372036854775807 START WITH 1 CACHE 1),
	"kind" text NOT NULL,
	"request_id" uuid,
	"status" text DEFAULT 'pending' NOT NULL,
	"step" text DEFAULT 'submit' NOT NULL,
	"provider" text,
	"provider_job_id" text,
	"payload" jsonb,
	"attempts" integer DEFAULT 0 NOT NULL,
	"max_attempts" integer DEFAULT 10 NOT NULL,
	"run_at" timestamp with time zone DEFAULT now() NOT NULL,
	"locked_by" text,
	"locked_until" timestamp with time zone,
	"deadline_at" timestamp with time zone,
	"last_error" text,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "generation_jobs_kind_valid" CHECK (kind IN ('generate', 'deliver', 'reap')),
	CONSTRAINT "generation_jobs_status_valid" CHECK (status IN ('pending', 'running', 'succeeded', 'failed')),
	CONSTRAINT "generation_jobs_attempts_not_negative" CHECK ("generation_jobs"."attempts" >= 0)
);
--> statement-breakpoint
CREATE TABLE "generation_references" (
	"id" bigint PRIMARY KEY GENERATED ALWAYS AS IDENTITY (sequence name "generation_references_id_seq" INCREMENT BY 1 MINVALUE 1 MAXVALUE 9223372036854775807 START WITH 1 CACHE 1),
	"request_id" uuid NOT NULL,
	"position" smallint NOT NULL,
	"kind" text NOT NULL,
	"value" text NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "generation_references_position_uq" UNIQUE("request_id","position"),
	CONSTRAINT "generation_references_kind_valid" CHECK (kind IN ('telegram_file', 'url')),
	CONSTRAINT "generation_references_position_not_negative" CHECK ("generation_references"."position" >= 0)
);
--> statement-breakpoint
CREATE TABLE "generation_requests" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid() NOT NULL,
	"user_id" bigint NOT NULL,
	"model_id" bigint NOT NULL,
	"price_id" bigint,
	"prompt" text NOT NULL,
	"parameters" jsonb DEFAULT '{}'::jsonb NOT NULL,
	"status" text DEFAULT 'queued' NOT NULL,
	"payment_method" text NOT NULL,
	"price_credits" integer NOT NULL,
	"charge_entry_id" bigint,
	"refund_entry_id" bigint,
	"error_code" text,
	"error_message" text,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"started_at" timestamp with time zone,
	"completed_at" timestamp with time zone,
	"deadline_at" timestamp with time zone,
	CONSTRAINT "generation_requests_status_valid" CHECK (status IN ('queued', 'running', 'succeeded', 'failed', 'cancelled')),
	CONSTRAINT "generation_requests_payment_method_valid" CHECK (payment_method IN ('credits', 'trial')),
	CONSTRAINT "generation_requests_price_not_negative" CHECK ("generation_requests"."price_credits" >= 0),
	CONSTRAINT "generation_requests_trial_is_free" CHECK ("generation_requests"."payment_method" = 'credits' OR ("generation_requests"."charge_entry_id" IS NULL AND "generation_requests"."price_credits" = 0))
);
--> statement-breakpoint
CREATE TABLE "generation_results" (
	"id" bigint PRIMARY KEY GENERATED ALWAYS AS IDENTITY (sequence name "generation_results_id_seq" INCREMENT BY 1 MINVALUE 1 MAXVALUE 9223372036854775807 START WITH 1 CACHE 1),
	"request_id" uuid NOT NULL,
	"position" smallint NOT NULL,
	"url" text,
	"storage_path" text,
	"mime_type" text NOT NULL,
	"width" integer,
	"height" integer,
	"seed" bigint,
	"provider_metadata" jsonb,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "generation_results_position_uq" UNIQUE("request_id","position"),
	CONSTRAINT "generation_results_has_location" CHECK ("generation_results"."url" IS NOT NULL OR "generation_results"."storage_path" IS NOT NULL)
);
--> statement-breakpoint
CREATE TABLE "trial_uses" (
	"id" bigint PRIMARY KEY GENERATED ALWAYS AS IDENTITY (sequence name "trial_uses_id_seq" INCREMENT BY 1 MINVALUE 1 MAXVALUE 9223372036854775807 START WITH 1 CACHE 1),
	"user_id" bigint NOT NULL,
	"generation_request_id" uuid,
	"used_at" timestamp with time zone DEFAULT now() NOT NULL,
	"returned_at" timestamp with time zone,
	"return_reason" text,
	CONSTRAINT "trial_uses_return_after_use" CHECK ("trial_uses"."returned_at" IS NULL OR "trial_uses"."returned_at" >= "trial_uses"."used_at")
);
--> statement-breakpoint
CREATE TABLE "ledger_entries" (
	"id" bigint PRIMARY KEY GENERATED ALWAYS AS IDENTITY (sequence name "ledger_entries_id_seq" INCREMENT BY 1 MINVALUE 1 MAXVALUE 9223372036854775807 START WITH 1 CACHE 1),
	"user_id" bigint NOT NULL,
	"amount" integer NOT NULL,
	"user_entry_no" integer DEFAULT 0 NOT NULL,
	"balance_after" bigint DEFAULT 0 NOT NULL,
	"kind" text NOT NULL,
	"reference_type" text,
	"reference_id" text,
	"idempotency_key" text,
	"reason" text,
	"actor" text DEFAULT 'system' NOT NULL,
	"metadata" jsonb,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "ledger_entries_amount_nonzero" CHECK ("ledger_entries"."amount" <> 0),
	CONSTRAINT "ledger_entries_balance_not_negative" CHECK ("ledger_entries"."balance_after" >= 0),
	CONSTRAINT "ledger_entries_kind_valid" CHECK (kind IN ('topup', 'bonus', 'admin_adjustment', 'generation_charge', 'generation_refund', 'referral_bonus', 'payment_refund'))
);
--> statement-breakpoint
CREATE TABLE "users" (
	"id" bigint PRIMARY KEY GENERATED ALWAYS AS IDENTITY (sequence name "users_id_seq" INCREMENT BY 1 MINVALUE 1 MAXVALUE 9223372036854775807 START WITH 1 CACHE 1),
	"telegram_id" bigint NOT NULL,
	"username" text,
	"first_name" text,
	"last_name" text,
	"language_code" text,
	"is_premium" boolean DEFAULT false NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "users_telegram_id_unique" UNIQUE("telegram_id"),
	CONSTRAINT "users_telegram_id_positive" CHECK ("users"."telegram_id" > 0)
);
--> statement-breakpoint
ALTER TABLE "model_prices" ADD CONSTRAINT "model_prices_model_id_model_catalog_id_fk" FOREIGN KEY ("model_id") REFERENCES "public"."model_catalog"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "generation_jobs" ADD CONSTRAINT "generation_jobs_request_id_generation_requests_id_fk" FOREIGN KEY ("request_id") REFERENCES "public"."generation_requests"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "generation_references" ADD CONSTRAINT "generation_references_request_id_generation_requests_id_fk" FOREIGN KEY ("request_id") REFERENCES "public"."generation_requests"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "generation_requests" ADD CONSTRAINT "generation_requests_user_id_users_id_fk" FOREIGN KEY ("user_id") REFERENCES "public"."users"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "generation_requests" ADD CONSTRAINT "generation_requests_model_id_model_catalog_id_fk" FOREIGN KEY ("model_id") REFERENCES "public"."model_catalog"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "generation_requests" ADD CONSTRAINT "generation_requests_price_id_model_prices_id_fk" FOREIGN KEY ("price_id") REFERENCES "public"."model_prices"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "generation_requests" ADD CONSTRAINT "generation_requests_charge_entry_id_ledger_entries_id_fk" FOREIGN KEY ("charge_entry_id") REFERENCES "public"."ledger_entries"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "generation_requests" ADD CONSTRAINT "generation_requests_refund_entry_id_ledger_entries_id_fk" FOREIGN KEY ("refund_entry_id") REFERENCES "public"."ledger_entries"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "generation_results" ADD CONSTRAINT "generation_results_request_id_generation_requests_id_fk" FOREIGN KEY ("request_id") REFERENCES "public"."generation_requests"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "trial_uses" ADD CONSTRAINT "trial_uses_user_id_users_id_fk" FOREIGN KEY ("user_id") REFERENCES "public"."users"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "trial_uses" ADD CONSTRAINT "trial_uses_generation_request_id_generation_requests_id_fk" FOREIGN KEY ("generation_request_id") REFERENCES "public"."generation_requests"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "ledger_entries" ADD CONSTRAINT "ledger_entries_user_id_users_id_fk" FOREIGN KEY ("user_id") REFERENCES "public"."users"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
CREATE UNIQUE INDEX "model_prices_one_open_price_uq" ON "model_prices" USING btree ("model_id","conditions") WHERE "model_prices"."valid_to" IS NULL;--> statement-breakpoint
CREATE INDEX "model_prices_model_idx" ON "model_prices" USING btree ("model_id");--> statement-breakpoint
CREATE UNIQUE INDEX "generation_jobs_one_per_kind_uq" ON "generation_jobs" USING btree ("request_id","kind");--> statement-breakpoint
CREATE INDEX "generation_jobs_claim_idx" ON "generation_jobs" USING btree ("run_at") WHERE "generation_jobs"."status" = 'pending';--> statement-breakpoint
CREATE INDEX "generation_jobs_lease_idx" ON "generation_jobs" USING btree ("locked_until") WHERE "generation_jobs"."status" = 'running';--> statement-breakpoint
CREATE UNIQUE INDEX "generation_jobs_provider_job_uq" ON "generation_jobs" USING btree ("provider","provider_job_id") WHERE "generation_jobs"."provider_job_id" IS NOT NULL;--> statement-breakpoint
CREATE INDEX "generation_requests_user_newest_idx" ON "generation_requests" USING btree ("user_id","created_at" DESC NULLS LAST);--> statement-breakpoint
CREATE INDEX "generation_requests_user_active_idx" ON "generation_requests" USING btree ("user_id") WHERE "generation_requests"."status" IN ('queued', 'running');--> statement-breakpoint
CREATE INDEX "trial_uses_user_idx" ON "trial_uses" USING btree ("user_id");--> statement-breakpoint
CREATE UNIQUE INDEX "trial_uses_generation_uq" ON "trial_uses" USING btree ("generation_request_id");--> statement-breakpoint
CREATE UNIQUE INDEX "ledger_entries_user_entry_no_uq" ON "ledger_entries" USING btree ("user_id","user_entry_no");--> statement-breakpoint
CREATE UNIQUE INDEX "ledger_entries_idempotency_key_uq" ON "ledger_entries" USING btree ("idempotency_key");--> statement-breakpoint
CREATE INDEX "ledger_entries_reference_idx" ON "ledger_entries" USING btree ("reference_type","reference_id");