-- Users get a referral code of their own and who invited them, a chosen language, preferences, a
-- ban and when the bot last saw them; the ledger gets the kind that takes a referral bonus back.
--
-- 1. new_referral_code(): 8 characters from an alphabet without look-alikes (no 0/O, 1/I/L; the
--    same as REFERRAL_CODE_ALPHABET in src/db/schema/users.ts), drawn from gen_random_uuid()'s
--    random bytes (bytes 6 and 8 carry the UUID's version and variant, so they are skipped), again
--    until no user has it. It is the column's default, so every way a user row is made (sync, a
--    payment of a user never synced, SQL by hand) makes a code; the unique constraint holds
--    against two concurrent inserts drawing the same code.
CREATE FUNCTION new_referral_code() RETURNS text LANGUAGE plpgsql VOLATILE AS $$
DECLARE
  alphabet constant text := '23456789ABCDEFGHJKMNPQRSTUVWXYZ';
  positions constant integer[] := ARRAY[0, 1, 2, 3, 4, 5, 7, 9];
  random_bytes bytea;
  code text;
BEGIN
  LOOP
    random_bytes := uuid_send(gen_random_uuid());
    code := '';
    FOR i IN 1..8 LOOP
      code := code || substr(alphabet, 1 + get_byte(random_bytes, positions[i]) % 31, 1);
    END LOOP;
    EXIT WHEN NOT EXISTS (SELECT 1 FROM users u WHERE u.referral_code = code);
  END LOOP;
  RETURN code;
END;
$$;
--> statement-breakpoint
ALTER TABLE "users" ADD COLUMN "referral_code" text;--> statement-breakpoint
ALTER TABLE "users" ADD CONSTRAINT "users_referral_code_unique" UNIQUE("referral_code");--> statement-breakpoint
-- Existing users get a code each, one statement per user so that each draw sees the codes made
-- before it (one UPDATE of every row would not, and a thousand users would collide now and then).
DO $$
DECLARE
  target record;
BEGIN
  FOR target IN SELECT id FROM users WHERE referral_code IS NULL ORDER BY id LOOP
    UPDATE users SET referral_code = new_referral_code() WHERE id = target.id;
  END LOOP;
END;
$$;
--> statement-breakpoint
ALTER TABLE "users" ALTER COLUMN "referral_code" SET DEFAULT new_referral_code();--> statement-breakpoint
ALTER TABLE "users" ALTER COLUMN "referral_code" SET NOT NULL;--> statement-breakpoint
ALTER TABLE "users" ADD CONSTRAINT "users_referral_code_form" CHECK (referral_code ~ '^[23456789ABCDEFGHJKMNPQRSTUVWXYZ]{8}$');--> statement-breakpoint
-- 2. Who invited whom: set when the user is created, never to itself.
ALTER TABLE "users" ADD COLUMN "referred_by" bigint;--> statement-breakpoint
ALTER TABLE "users" ADD CONSTRAINT "users_referred_by_users_id_fk" FOREIGN KEY ("referred_by") REFERENCES "public"."users"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "users" ADD CONSTRAINT "users_not_referred_by_self" CHECK ("users"."referred_by" <> "users"."id");--> statement-breakpoint
CREATE INDEX "users_referred_by_idx" ON "users" USING btree ("referred_by");--> statement-breakpoint
-- 3. The language the user chose, its preferences (a small JSON object), its ban, last seen.
ALTER TABLE "users" ADD COLUMN "language" text;--> statement-breakpoint
ALTER TABLE "users" ADD CONSTRAINT "users_language_valid" CHECK (language IN ('uz', 'ru', 'en'));--> statement-breakpoint
ALTER TABLE "users" ADD COLUMN "preferences" jsonb DEFAULT '{}'::jsonb NOT NULL;--> statement-breakpoint
ALTER TABLE "users" ADD CONSTRAINT "users_preferences_object" CHECK (jsonb_typeof("users"."preferences") = 'object' AND octet_length("users"."preferences"::text) <= 8192);--> statement-breakpoint
ALTER TABLE "users" ADD COLUMN "banned_at" timestamp with time zone;--> statement-breakpoint
ALTER TABLE "users" ADD COLUMN "ban_reason" text;--> statement-breakpoint
ALTER TABLE "users" ADD CONSTRAINT "users_ban_reason_only_when_banned" CHECK ("users"."ban_reason" IS NULL OR "users"."banned_at" IS NOT NULL);--> statement-breakpoint
ALTER TABLE "users" ADD COLUMN "last_seen_at" timestamp with time zone;--> statement-breakpoint
-- 4. The ledger's kinds: referral_clawback takes back a referral bonus whose payment was refunded.
ALTER TABLE "ledger_entries" DROP CONSTRAINT "ledger_entries_kind_valid";--> statement-breakpoint
ALTER TABLE "ledger_entries" ADD CONSTRAINT "ledger_entries_kind_valid" CHECK (kind IN ('topup', 'bonus', 'admin_adjustment', 'generation_charge', 'generation_refund', 'referral_bonus', 'payment_refund', 'referral_clawback'));
