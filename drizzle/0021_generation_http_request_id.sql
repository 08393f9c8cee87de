-- The id of the HTTP request that accepted a generation, kept with it so the worker's log lines
-- (submitted, completed or failed, delivered) name the request that started it.
ALTER TABLE "generation_requests" ADD COLUMN "http_request_id" text;--> statement-breakpoint
-- accept_generation() (as in 0010) stores it: one more argument makes a new function, so the
-- 14-argument one goes first and no caller can reach it.
DROP FUNCTION IF EXISTS accept_generation(uuid, bigint, bigint, bigint, text, jsonb, jsonb, text, integer, integer, timestamptz, text, text, jsonb);
--> statement-breakpoint
CREATE OR REPLACE FUNCTION accept_generation(
  p_id uuid, p_telegram_id bigint, p_model_id bigint, p_price_id bigint, p_prompt text,
  p_parameters jsonb, p_references jsonb, p_payment text, p_trial_limit integer,
  p_max_active integer, p_deadline timestamptz, p_provider text, p_actor text,
  p_telegram jsonb DEFAULT NULL, p_http_request_id text DEFAULT NULL
)
RETURNS TABLE (
  outcome text, payment_method text, price_credits integer, balance bigint, trials_used integer,
  active integer, job_id bigint, created_at timestamptz, queue_position integer
)
LANGUAGE plpgsql AS $$
DECLARE
  v_user bigint;
  v_charge bigint;
BEGIN
  SELECT u.id INTO v_user FROM users u WHERE u.telegram_id = p_telegram_id FOR NO KEY UPDATE;
  IF NOT FOUND THEN
    outcome := 'no_user';
    RETURN NEXT;
    RETURN;
  END IF;

  -- The same generation id again is a retry of a request whose answer was lost (the id is derived
  -- from the caller's Idempotency-Key): answer what was accepted, charge nothing more. Before the
  -- price check: a retry must find its generation even if the price has changed since.
  SELECT g.payment_method, g.price_credits, g.created_at INTO payment_method, price_credits, created_at
    FROM generation_requests g WHERE g.id = p_id AND g.user_id = v_user;
  IF FOUND THEN
    SELECT count(*)::integer INTO trials_used FROM trial_uses t
      WHERE t.user_id = v_user AND t.returned_at IS NULL;
    SELECT l.balance_after INTO balance FROM ledger_entries l
      WHERE l.user_id = v_user ORDER BY l.user_entry_no DESC LIMIT 1;
    balance := COALESCE(balance, 0);
    SELECT j.id INTO job_id FROM generation_jobs j WHERE j.request_id = p_id AND j.kind = 'generate';
    SELECT count(*)::integer INTO queue_position FROM (
      SELECT 1 FROM generation_jobs w
      WHERE w.status = 'pending' AND w.kind = 'generate' AND w.id <= job_id AND w.run_at <= now()
      LIMIT 1000) ahead;
    outcome := 'already_accepted';
    RETURN NEXT;
    RETURN;
  END IF;

  SELECT p.credits INTO price_credits FROM model_prices p
    WHERE p.id = p_price_id AND p.model_id = p_model_id AND p.valid_to IS NULL;
  IF NOT FOUND THEN
    outcome := 'price_changed';
    RETURN NEXT;
    RETURN;
  END IF;

  -- Read after the lock, in statements of their own: they see every committed generation,
  -- trial use and ledger entry of this user.
  SELECT count(*)::integer INTO active FROM generation_requests g
    WHERE g.user_id = v_user AND g.status IN ('queued', 'running');
  SELECT count(*)::integer INTO trials_used FROM trial_uses t
    WHERE t.user_id = v_user AND t.returned_at IS NULL;
  SELECT l.balance_after INTO balance FROM ledger_entries l
    WHERE l.user_id = v_user ORDER BY l.user_entry_no DESC LIMIT 1;
  balance := COALESCE(balance, 0);

  IF active >= p_max_active THEN
    outcome := 'too_many_active';
    RETURN NEXT;
    RETURN;
  END IF;

  payment_method := CASE
    WHEN p_payment = 'credits' THEN 'credits'
    WHEN p_payment = 'trial' OR trials_used < p_trial_limit THEN 'trial'
    ELSE 'credits' END;
  IF payment_method = 'trial' AND trials_used >= p_trial_limit THEN
    outcome := 'trial_unavailable';
    RETURN NEXT;
    RETURN;
  END IF;
  IF payment_method = 'credits' AND balance < price_credits THEN
    outcome := 'insufficient';
    RETURN NEXT;
    RETURN;
  END IF;

  IF payment_method = 'credits' THEN
    INSERT INTO ledger_entries AS l
      (user_id, amount, kind, reference_type, reference_id, idempotency_key, reason, actor)
    VALUES (v_user, -price_credits, 'generation_charge', 'generation', p_id::text,
            'generation-charge:' || p_id::text,
            'generation ' || (SELECT m.key FROM model_catalog m WHERE m.id = p_model_id), p_actor)
    RETURNING l.id, l.balance_after INTO v_charge, balance;
  ELSE
    trials_used := trials_used + 1;
  END IF;

  INSERT INTO generation_requests AS g
    (id, user_id, model_id, price_id, prompt, parameters, payment_method, price_credits,
     charge_entry_id, deadline_at, http_request_id)
  VALUES (p_id, v_user, p_model_id, p_price_id, p_prompt, p_parameters, payment_method,
          CASE WHEN payment_method = 'credits' THEN price_credits ELSE 0 END, v_charge, p_deadline,
          p_http_request_id)
  RETURNING g.created_at INTO created_at;

  -- Where the bot wants the news of it: stored with the request, so no worker can deliver it
  -- before it is there.
  IF p_telegram IS NOT NULL THEN
    INSERT INTO generation_telegram (request_id, chat_id, reply_to_message_id, status_message_id, language)
    VALUES (p_id, (p_telegram->>'chat_id')::bigint, (p_telegram->>'reply_to_message_id')::bigint,
            (p_telegram->>'status_message_id')::bigint, p_telegram->>'language');
  END IF;

  INSERT INTO generation_references (request_id, position, kind, value)
  SELECT p_id, (r.n - 1)::smallint, r.item->>'kind', r.item->>'value'
  FROM jsonb_array_elements(p_references) WITH ORDINALITY AS r(item, n);

  IF payment_method = 'trial' THEN
    INSERT INTO trial_uses (user_id, generation_request_id) VALUES (v_user, p_id);
  END IF;

  INSERT INTO generation_jobs AS j (kind, request_id, provider, deadline_at)
  VALUES ('generate', p_id, p_provider, p_deadline)
  RETURNING j.id INTO job_id;

  -- Where it stands among waiting generations (1 = next), counted up to 1,000, not beyond.
  SELECT count(*)::integer INTO queue_position FROM (
    SELECT 1 FROM generation_jobs w
    WHERE w.status = 'pending' AND w.kind = 'generate' AND w.id <= job_id AND w.run_at <= now()
    LIMIT 1000) ahead;

  IF payment_method = 'trial' THEN
    price_credits := 0;
  END IF;
  outcome := 'accepted';
  RETURN NEXT;
END;
$$;
