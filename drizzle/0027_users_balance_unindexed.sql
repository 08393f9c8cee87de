-- The ledger trigger writes users.balance on every entry. With balance in an index predicate no
-- such update can be HOT, so each one rewrote every index of users: bench:ledger fell from 8,448
-- to 3,617 charges/s across users. The with_balance filter reads the column without the index
-- (about 50 ms for its capped count at 1,000,000 users), so the index goes.
DROP INDEX IF EXISTS "users_with_balance_idx";
