CREATE TABLE `transcript_lines` (
	`id` text PRIMARY KEY NOT NULL,
	`tenant_id` text NOT NULL,
	`session_id` text NOT NULL,
	`seq` integer NOT NULL,
	`role` text NOT NULL,
	`text` text NOT NULL,
	`provider` text NOT NULL,
	`interrupted` integer DEFAULT false NOT NULL,
	`item_id` text,
	`occurred_at` integer NOT NULL,
	FOREIGN KEY (`tenant_id`) REFERENCES `tenants`(`id`) ON UPDATE no action ON DELETE no action
);
--> statement-breakpoint
CREATE INDEX `transcript_lines_tenant_session_idx` ON `transcript_lines` (`tenant_id`,`session_id`,`seq`);--> statement-breakpoint
CREATE UNIQUE INDEX `transcript_lines_session_seq_unique` ON `transcript_lines` (`session_id`,`seq`);