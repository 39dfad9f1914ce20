CREATE TABLE `session_escalations` (
	`tenant_id` text NOT NULL,
	`session_id` text NOT NULL,
	`rule` text NOT NULL,
	`reason` text NOT NULL,
	`transfer_to` text,
	`transfer_ok` integer,
	`transfer_error` text,
	`at` integer NOT NULL,
	PRIMARY KEY(`session_id`, `rule`),
	FOREIGN KEY (`tenant_id`) REFERENCES `tenants`(`id`) ON UPDATE no action ON DELETE no action
);
--> statement-breakpoint
CREATE INDEX `session_escalations_tenant_session_idx` ON `session_escalations` (`tenant_id`,`session_id`);--> statement-breakpoint
CREATE INDEX `session_escalations_tenant_time_idx` ON `session_escalations` (`tenant_id`,`at`);