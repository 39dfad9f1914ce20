CREATE TABLE `turn_timings` (
	`id` text PRIMARY KEY NOT NULL,
	`tenant_id` text NOT NULL,
	`session_id` text NOT NULL,
	`provider` text NOT NULL,
	`item_id` text NOT NULL,
	`caller_stopped_at` integer,
	`provider_first_audio_at` integer NOT NULL,
	`first_frame_sent_at` integer,
	`first_mark_heard_at` integer,
	`interrupted` integer DEFAULT false NOT NULL,
	FOREIGN KEY (`tenant_id`) REFERENCES `tenants`(`id`) ON UPDATE no action ON DELETE no action
);
--> statement-breakpoint
CREATE INDEX `turn_timings_tenant_session_idx` ON `turn_timings` (`tenant_id`,`session_id`,`provider_first_audio_at`);