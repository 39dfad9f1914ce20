CREATE TABLE `provider_switches` (
	`id` text PRIMARY KEY NOT NULL,
	`tenant_id` text NOT NULL,
	`session_id` text NOT NULL,
	`from_provider` text NOT NULL,
	`to_provider` text NOT NULL,
	`reason` text NOT NULL,
	`outcome` text NOT NULL,
	`error` text,
	`messages_carried` integer NOT NULL,
	`started_at` integer NOT NULL,
	`duration_ms` integer NOT NULL,
	FOREIGN KEY (`tenant_id`) REFERENCES `tenants`(`id`) ON UPDATE no action ON DELETE no action
);
--> statement-breakpoint
CREATE INDEX `provider_switches_tenant_session_idx` ON `provider_switches` (`tenant_id`,`session_id`,`started_at`);--> statement-breakpoint
ALTER TABLE `sessions` ADD `metadata` text;