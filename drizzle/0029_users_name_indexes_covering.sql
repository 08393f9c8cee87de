-- GET /admin/users counts a query's matches as a UNION ALL of one part per name index (the
-- username, the full name, the last name; each part without the earlier ones), so that each part
-- is an index-only range that stops at the count's cap instead of a bitmap over all three that
-- reads every matching row (bench:admin, docs/benchmarks.md). An index-only scan needs every
-- column its part reads: its own names (PostgreSQL does not take them from the expression), the
-- earlier parts' names, and last_seen_at (migration 0028).
DROP INDEX "users_username_lower_idx";--> statement-breakpoint
DROP INDEX "users_full_name_lower_idx";--> statement-breakpoint
DROP INDEX "users_last_name_lower_idx";--> statement-breakpoint
CREATE INDEX "users_username_lower_idx" ON "users" (lower("username") text_pattern_ops, "last_seen_at") INCLUDE ("username");--> statement-breakpoint
CREATE INDEX "users_full_name_lower_idx" ON "users" (lower(btrim(coalesce("first_name", '') || ' ' || coalesce("last_name", ''))) text_pattern_ops, "last_seen_at") INCLUDE ("first_name", "last_name", "username");--> statement-breakpoint
CREATE INDEX "users_last_name_lower_idx" ON "users" (lower("last_name") text_pattern_ops, "last_seen_at") INCLUDE ("first_name", "last_name", "username");
