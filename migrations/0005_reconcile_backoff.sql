CREATE TABLE `call_reconcile` (
	`call_id` text PRIMARY KEY NOT NULL,
	`tenant_id` text NOT NULL,
	`attempts` integer NOT NULL,
	`next_attempt_at` integer,
	`outcome` text NOT NULL,
	`updated_at` integer NOT NULL,
	FOREIGN KEY (`tenant_id`) REFERENCES `tenants`(`id`) ON UPDATE no action ON DELETE no action
);
--> statement-breakpoint
CREATE INDEX `call_reconcile_tenant_idx` ON `call_reconcile` (`tenant_id`);--> statement-breakpoint
CREATE INDEX `call_reconcile_next_idx` ON `call_reconcile` (`next_attempt_at`);--> statement-breakpoint
CREATE INDEX `calls_status_updated_idx` ON `calls` (`status`,`updated_at`);