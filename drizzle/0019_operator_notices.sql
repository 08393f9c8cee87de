CREATE TABLE "operator_notices" (
	"key" text PRIMARY KEY NOT NULL,
	"status" text DEFAULT 'sending' NOT NULL,
	"chat_id" bigint NOT NULL,
	"attempts" integer DEFAULT 1 NOT NULL,
	"claimed_at" timestamp with time zone DEFAULT now() NOT NULL,
	"sent_at" timestamp with time zone,
	"error" text,
	CONSTRAINT "operator_notices_status_valid" CHECK (status IN ('sending', 'sent', 'failed', 'unknown'))
);
