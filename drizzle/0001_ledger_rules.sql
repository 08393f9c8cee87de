-- The ledger's rules live in the database, so no caller (a bug, a script, psql) can break them.

-- 1. Append-only: an entry, once written, is never changed or removed.
CREATE FUNCTION ledger_entries_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'ledger_entries is append-only: % is refused', TG_OP
    USING ERRCODE = 'insufficient_privilege',
          HINT = 'Correct a balance with a new entry (kind admin_adjustment or a refund).';
END;
$$;
--> statement-breakpoint
CREATE TRIGGER ledger_entries_no_update_or_delete
  BEFORE UPDATE OR DELETE ON ledger_entries
  FOR EACH ROW EXECUTE FUNCTION ledger_entries_refuse_change();
--> statement-breakpoint
CREATE TRIGGER ledger_entries_no_truncate
  BEFORE TRUNCATE ON ledger_entries
  FOR EACH STATEMENT EXECUTE FUNCTION ledger_entries_refuse_change();
--> statement-breakpoint
-- 2. Running balance: each entry carries the user's balance after it and its place in the user's
-- ledger, computed under a lock on the user's row so concurrent entries for one user serialise.
-- A balance below zero is refused with SQLSTATE C0001 and the balance and amount in DETAIL.
CREATE FUNCTION ledger_entries_running_balance() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  previous_balance bigint;
  previous_entry_no integer;
BEGIN
  PERFORM 1 FROM users WHERE id = NEW.user_id FOR NO KEY UPDATE;
  SELECT balance_after, user_entry_no INTO previous_balance, previous_entry_no
    FROM ledger_entries
    WHERE user_id = NEW.user_id
    ORDER BY user_entry_no DESC
    LIMIT 1;
  NEW.user_entry_no := COALESCE(previous_entry_no, 0) + 1;
  NEW.balance_after := COALESCE(previous_balance, 0) + NEW.amount;
  IF NEW.balance_after < 0 THEN
    RAISE EXCEPTION 'insufficient credits'
      USING ERRCODE = 'C0001',
            DETAIL = json_build_object('balance', COALESCE(previous_balance, 0), 'amount', NEW.amount)::text;
  END IF;
  RETURN NEW;
END;
$$;
--> statement-breakpoint
CREATE TRIGGER ledger_entries_running_balance
  BEFORE INSERT ON ledger_entries
  FOR EACH ROW EXECUTE FUNCTION ledger_entries_running_balance();
