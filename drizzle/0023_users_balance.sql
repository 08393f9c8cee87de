-- A user's balance where the operators' list can filter and show it without reading the ledger
-- per user (issue 9: the filter with_balance read every user's last entry). The ledger stays the
-- truth: the column is written only by the ledger's own insert trigger, in the statement that
-- appends the entry, and equals the balance_after of the user's last entry.
ALTER TABLE "users" ADD COLUMN "balance" bigint DEFAULT 0 NOT NULL;--> statement-breakpoint
UPDATE "users" u SET "balance" = last.balance_after
  FROM (SELECT DISTINCT ON (user_id) user_id, balance_after
          FROM ledger_entries ORDER BY user_id, user_entry_no DESC) AS last
  WHERE last.user_id = u.id AND last.balance_after <> 0;--> statement-breakpoint
CREATE INDEX "users_with_balance_idx" ON "users" USING btree ("id") WHERE "users"."balance" > 0;--> statement-breakpoint
ALTER TABLE "users" ADD CONSTRAINT "users_balance_not_negative" CHECK ("users"."balance" >= 0);--> statement-breakpoint
-- AFTER, not BEFORE: an entry that ON CONFLICT (idempotency_key) DO NOTHING skips fires no AFTER
-- trigger, so only entries really appended move the balance. The BEFORE trigger (migration 0001)
-- holds the user's row lock to the end of the transaction, so a user's entries reach this trigger
-- in their order and the last one's balance_after stays.
CREATE FUNCTION ledger_entries_keep_user_balance() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  UPDATE users SET balance = NEW.balance_after WHERE id = NEW.user_id;
  RETURN NULL;
END;
$$;
--> statement-breakpoint
CREATE TRIGGER ledger_entries_keep_user_balance
  AFTER INSERT ON ledger_entries
  FOR EACH ROW EXECUTE FUNCTION ledger_entries_keep_user_balance();
