CREATE TABLE "broadcast_pacing" (
	"id" smallint PRIMARY KEY DEFAULT 1 NOT NULL,
	"next_at" timestamp with time zone NOT NULL,
	CONSTRAINT "broadcast_pacing_one_row" CHECK ("broadcast_pacing"."id" = 1)
);
--> statement-breakpoint
CREATE TABLE "broadcast_recipients" (
	"broadcast_id" bigint NOT NULL,
	"user_id" bigint NOT NULL,
	"telegram_id" bigint NOT NULL,
	"status" text DEFAULT 'pending' NOT NULL,
	"attempts" integer DEFAULT 0 NOT NULL,
	"claimed_at" timestamp with time zone,
	"sent_at" timestamp with time zone,
	"error" text,
	CONSTRAINT "broadcast_recipients_broadcast_id_user_id_pk" PRIMARY KEY("broadcast_id","user_id"),
	CONSTRAINT "broadcast_recipients_status_valid" CHECK (status IN ('pending', 'sending', 'sent', 'failed', 'blocked'))
);
--> statement-breakpoint
CREATE TABLE "broadcasts" (
	"id" bigint PRIMARY KEY GENERATED ALWAYS AS IDENTITY (sequence name "broadcasts_id_seq" INCREMENT BY 1 MINVALUE 1 MAXVALUE 9223372036854775807 START WITH 1 CACHE 1),
	"status" text DEFAULT 'draft' NOT NULL,
	"text" text,
	"entities" jsonb,
	"copy_from_chat_id" bigint,
	"copy_message_id" bigint,
	"button" jsonb,
	"audience" jsonb NOT NULL,
	"created_by" text NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"started_at" timestamp with time zone,
	"completed_at" timestamp with time zone,
	"total_recipients" integer DEFAULT 0 NOT NULL,
	"held_until" timestamp with time zone,
	CONSTRAINT "broadcasts_status_valid" CHECK (status IN ('draft', 'running', 'paused', 'completed', 'cancelled')),
	CONSTRAINT "broadcasts_content_one_kind" CHECK (("broadcasts"."text" IS NOT NULL AND "broadcasts"."copy_from_chat_id" IS NULL AND "broadcasts"."copy_message_id" IS NULL)
          OR ("broadcasts"."text" IS NULL AND "broadcasts"."entities" IS NULL AND "broadcasts"."copy_from_chat_id" IS NOT NULL
              AND "broadcasts"."copy_message_id" IS NOT NULL))
);
--> statement-breakpoint
ALTER TABLE "generation_jobs" DROP CONSTRAINT "generation_jobs_kind_valid";--> statement-breakpoint
ALTER TABLE "broadcast_recipients" ADD CONSTRAINT "broadcast_recipients_broadcast_id_broadcasts_id_fk" FOREIGN KEY ("broadcast_id") REFERENCES "public"."broadcasts"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "broadcast_recipients" ADD CONSTRAINT "broadcast_recipients_user_id_users_id_fk" FOREIGN KEY ("user_id") REFERENCES "public"."users"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
CREATE INDEX "broadcast_recipients_pending_idx" ON "broadcast_recipients" USING btree ("broadcast_id","user_id") WHERE "broadcast_recipients"."status" = 'pending';--> statement-breakpoint
ALTER TABLE "generation_jobs" ADD CONSTRAINT "generation_jobs_kind_valid" CHECK (kind IN ('generate', 'deliver', 'broadcast'));