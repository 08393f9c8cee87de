-- The `reap` job kind is gone: nothing ever created or claimed one. Any such row could never run,
-- so it is removed before the narrower rule is checked.
DELETE FROM "generation_jobs" WHERE kind = 'reap';--> statement-breakpoint
ALTER TABLE "generation_jobs" DROP CONSTRAINT "generation_jobs_kind_valid";--> statement-breakpoint
ALTER TABLE "generation_jobs" ADD CONSTRAINT "generation_jobs_kind_valid" CHECK (kind IN ('generate', 'deliver'));
