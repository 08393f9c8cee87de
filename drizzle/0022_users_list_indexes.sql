CREATE INDEX "users_created_idx" ON "users" USING btree ("created_at");--> statement-breakpoint
CREATE INDEX "users_banned_idx" ON "users" USING btree ("id") WHERE "users"."banned_at" IS NOT NULL;--> statement-breakpoint
CREATE INDEX "users_blocked_idx" ON "users" USING btree ("id") WHERE "users"."blocked_at" IS NOT NULL;