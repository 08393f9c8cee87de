-- Reference images a Mini App user uploads (POST /api/v1/users/{telegram_id}/uploads) are given to a
-- generation as `upload:<name>`, kept in the result store under the user's own folder.
ALTER TABLE "generation_references" DROP CONSTRAINT "generation_references_kind_valid";--> statement-breakpoint
ALTER TABLE "generation_references" ADD CONSTRAINT "generation_references_kind_valid" CHECK (kind IN ('telegram_file', 'url', 'upload'));
