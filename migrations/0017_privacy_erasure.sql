CREATE TABLE `erasure_requests` (
	`id` text PRIMARY KEY NOT NULL,
	`tenant_id` text NOT NULL,
	`requested_by` text NOT NULL,
	`subject_hash` text NOT NULL,
	`targets` text,
	`code_hash` text NOT NULL,
	`attempts` integer DEFAULT 0 NOT NULL,
	`expires_at` integer NOT NULL,
	`status` text NOT NULL,
	`step` integer DEFAULT 0 NOT NULL,
	`created_at` integer NOT NULL,
	`confirmed_at` integer,
	`completed_at` integer,
	`updated_at` integer NOT NULL,
	FOREIGN KEY (`tenant_id`) REFERENCES `tenants`(`id`) ON UPDATE no action ON DELETE no action
);
--> statement-breakpoint
CREATE INDEX `erasure_requests_tenant_idx` ON `erasure_requests` (`tenant_id`,`created_at`);--> statement-breakpoint
CREATE INDEX `erasure_requests_status_idx` ON `erasure_requests` (`status`,`updated_at`);--> statement-breakpoint
ALTER TABLE `sessions` ADD `content_purged_at` integer;