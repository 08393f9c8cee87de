CREATE TABLE "payment_corrections" (
	"id" bigint PRIMARY KEY GENERATED ALWAYS AS IDENTITY (sequence name "payment_corrections_id_seq" INCREMENT BY 1 MINVALUE 1 MAXVALUE 9223372036854775807 START WITH 1 CACHE 1),
	"kind" text NOT NULL,
	"telegram_payment_charge_id" text NOT NULL,
	"telegram_id" bigint,
	"stars" integer NOT NULL,
	"transaction_at" timestamp with time zone NOT NULL,
	"details" jsonb,
	"actor" text NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "payment_corrections_kind_valid" CHECK (kind IN ('payment_credited', 'refund_applied', 'payment_unmatched'))
);
--> statement-breakpoint
CREATE TABLE "payment_reconciliation" (
	"id" smallint PRIMARY KEY DEFAULT 1 NOT NULL,
	"reconciled_until" timestamp with time zone,
	"transactions_seen" integer DEFAULT 0 NOT NULL,
	"last_run_at" timestamp with time zone,
	CONSTRAINT "payment_reconciliation_one_row" CHECK ("payment_reconciliation"."id" = 1)
);
--> statement-breakpoint
CREATE UNIQUE INDEX "payment_corrections_kind_charge_uq" ON "payment_corrections" USING btree ("kind","telegram_payment_charge_id");--> statement-breakpoint
INSERT INTO "payment_reconciliation" ("id") VALUES (1);