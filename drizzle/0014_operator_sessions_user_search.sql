-- Operators' sessions (Telegram Login, src/services/operator-sessions.ts); users.blocked_at, set
-- when a delivery to the user's private chat is refused with 403 (the user blocked the bot); and
-- the indexes of the operators' user search (src/services/admin-users.ts).
CREATE TABLE "operator_sessions" (
	"id" bigint PRIMARY KEY GENERATED ALWAYS AS IDENTITY (sequence name "operator_sessions_id_seq" INCREMENT BY 1 MINVALUE 1 MAXVALUE 9223372036854775807 START WITH 1 CACHE 1),
	"token_sha256" text NOT NULL,
	"telegram_id" bigint NOT NULL,
	"role" text NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"expires_at" timestamp with time zone NOT NULL,
	"revoked_at" timestamp with time zone,
	CONSTRAINT "operator_sessions_token_sha256_unique" UNIQUE("token_sha256"),
	CONSTRAINT "operator_sessions_role_valid" CHECK (role IN ('admin', 'support')),
	CONSTRAINT "operator_sessions_token_form" CHECK ("operator_sessions"."token_sha256" ~ '^[0-9a-f]{64}$')
);
--> statement-breakpoint
ALTER TABLE "users" ADD COLUMN "blocked_at" timestamp with time zone;--> statement-breakpoint
CREATE INDEX "operator_sessions_telegram_id_idx" ON "operator_sessions" USING btree ("telegram_id");--> statement-breakpoint
CREATE INDEX "operator_sessions_expires_at_idx" ON "operator_sessions" USING btree ("expires_at");--> statement-breakpoint
-- GET /admin/users?query= matches a username, a full name ("first last") or a last name by a
-- case-insensitive prefix; each is answered from an index (text_pattern_ops serves LIKE 'abc%'
-- whatever the database's collation). The expressions are the ones the search writes.
CREATE INDEX "users_username_lower_idx" ON "users" (lower("username") text_pattern_ops);--> statement-breakpoint
CREATE INDEX "users_full_name_lower_idx" ON "users" (lower(btrim(coalesce("first_name", '') || ' ' || coalesce("last_name", ''))) text_pattern_ops);--> statement-breakpoint
CREATE INDEX "users_last_name_lower_idx" ON "users" (lower("last_name") text_pattern_ops);
