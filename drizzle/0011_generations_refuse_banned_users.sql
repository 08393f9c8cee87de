-- A banned user gets no generation: the database refuses to store a generation request for a user
-- whose banned_at is set (SQLSTATE C0002, the reason in DETAIL as JSON), whatever path writes it.
-- accept_generation() holds the user's row lock from its first statement, and a ban's UPDATE
-- takes the same lock, so a ban and an accept are one before the other: the request is refused
-- once the ban has committed, and its charge or free generation, written earlier in the same
-- statement, is undone with it. src/services/generation-accept.ts answers 403 user_banned.
CREATE FUNCTION generation_requests_refuse_banned_users() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  v_banned_at timestamptz;
  v_reason text;
BEGIN
  SELECT u.banned_at, u.ban_reason INTO v_banned_at, v_reason FROM users u WHERE u.id = NEW.user_id;
  IF v_banned_at IS NOT NULL THEN
    RAISE EXCEPTION 'user % is banned', NEW.user_id
      USING ERRCODE = 'C0002',
            DETAIL = json_build_object('reason', v_reason)::text;
  END IF;
  RETURN NEW;
END;
$$;
--> statement-breakpoint
CREATE TRIGGER generation_requests_refuse_banned_users
  BEFORE INSERT ON generation_requests
  FOR EACH ROW EXECUTE FUNCTION generation_requests_refuse_banned_users();
