CREATE TABLE "provider_balances" (
	"provider" text PRIMARY KEY NOT NULL,
	"status" text DEFAULT 'unknown' NOT NULL,
	"balance" double precision,
	"currency" text,
	"balance_at" timestamp with time zone,
	"checked_at" timestamp with time zone DEFAULT now() NOT NULL,
	"error" text,
	"low_since" timestamp with time zone,
	"recovered_from" timestamp with time zone,
	CONSTRAINT "provider_balances_status_valid" CHECK (status IN ('ok', 'low', 'unknown', 'error'))
);
