CREATE TABLE `recordings` (
	`id` text PRIMARY KEY NOT NULL,
	`tenant_id` text NOT NULL,
	`session_id` text NOT NULL,
	`r2_key` text NOT NULL,
	`duration_ms` integer NOT NULL,
	`bytes` integer NOT NULL,
	`created_at` integer NOT NULL,
	FOREIGN KEY (`tenant_id`) REFERENCES `tenants`(`id`) ON UPDATE no action ON DELETE no action
);
--> statement-breakpoint
CREATE UNIQUE INDEX `recordings_session_idx` ON `recordings` (`tenant_id`,`session_id`);--> statement-breakpoint
CREATE INDEX `recordings_tenant_idx` ON `recordings` (`tenant_id`,`created_at`);