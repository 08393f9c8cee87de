-- Appends many ledger entries in one statement, one commit: how concurrent charges share a
-- round trip and an fsync instead of paying one each (a hot user's charges otherwise queue on
-- its row lock for a commit apiece). Entries are taken in user-id order (then arrival order), so
-- two batches running at once lock users in the same order and cannot deadlock. Each entry gets
-- its own outcome: posted, replayed (its idempotency key was used), insufficient or no_user; the
-- ledger trigger still computes and checks every balance.
CREATE FUNCTION ledger_append_many(batch jsonb)
RETURNS TABLE (
  ord integer, outcome text, entry_id bigint, user_entry_no integer, amount integer,
  balance_after bigint, kind text, reference_type text, reference_id text, reason text,
  actor text, created_at timestamptz, balance bigint
)
LANGUAGE plpgsql AS $$
DECLARE
  item record;
  current_balance bigint;
BEGIN
  FOR item IN
    SELECT x.*, COALESCE(x.user_id, u.id) AS resolved_user
    FROM jsonb_to_recordset(batch) AS x(
      ord integer, user_id bigint, telegram_id bigint, amount integer, kind text,
      reference_type text, reference_id text, idempotency_key text, reason text, actor text,
      metadata jsonb)
    LEFT JOIN users u ON x.user_id IS NULL AND u.telegram_id = x.telegram_id
    ORDER BY COALESCE(x.user_id, u.id) NULLS FIRST, x.ord
  LOOP
    ord := item.ord;
    outcome := NULL; entry_id := NULL; user_entry_no := NULL; amount := NULL;
    balance_after := NULL; kind := NULL; reference_type := NULL; reference_id := NULL;
    reason := NULL; actor := NULL; created_at := NULL; balance := NULL;

    IF item.idempotency_key IS NOT NULL THEN
      SELECT l.id, l.user_entry_no, l.amount, l.balance_after, l.kind, l.reference_type,
             l.reference_id, l.reason, l.actor, l.created_at
        INTO entry_id, user_entry_no, amount, balance_after, kind, reference_type,
             reference_id, reason, actor, created_at
        FROM ledger_entries l WHERE l.idempotency_key = item.idempotency_key;
      IF FOUND THEN
        outcome := 'replayed';
        RETURN NEXT;
        CONTINUE;
      END IF;
    END IF;

    PERFORM 1 FROM users WHERE id = item.resolved_user FOR NO KEY UPDATE;
    IF NOT FOUND THEN
      outcome := 'no_user';
      RETURN NEXT;
      CONTINUE;
    END IF;

    SELECT l.balance_after INTO current_balance
      FROM ledger_entries l WHERE l.user_id = item.resolved_user
      ORDER BY l.user_entry_no DESC LIMIT 1;
    current_balance := COALESCE(current_balance, 0);
    IF current_balance + item.amount < 0 THEN
      outcome := 'insufficient';
      balance := current_balance;
      RETURN NEXT;
      CONTINUE;
    END IF;

    INSERT INTO ledger_entries AS l
      (user_id, amount, kind, reference_type, reference_id, idempotency_key, reason, actor, metadata)
    VALUES (item.resolved_user, item.amount, item.kind, item.reference_type, item.reference_id,
            item.idempotency_key, item.reason, COALESCE(item.actor, 'system'), item.metadata)
    ON CONFLICT (idempotency_key) DO NOTHING
    RETURNING l.id, l.user_entry_no, l.amount, l.balance_after, l.kind, l.reference_type,
              l.reference_id, l.reason, l.actor, l.created_at
      INTO entry_id, user_entry_no, amount, balance_after, kind, reference_type,
           reference_id, reason, actor, created_at;
    IF FOUND THEN
      outcome := 'posted';
    ELSE
      -- The same key committed by a concurrent transaction a moment ago.
      SELECT l.id, l.user_entry_no, l.amount, l.balance_after, l.kind, l.reference_type,
             l.reference_id, l.reason, l.actor, l.created_at
        INTO entry_id, user_entry_no, amount, balance_after, kind, reference_type,
             reference_id, reason, actor, created_at
        FROM ledger_entries l WHERE l.idempotency_key = item.idempotency_key;
      outcome := 'replayed';
    END IF;
    RETURN NEXT;
  END LOOP;
END;
$$;
