CREATE TABLE `spent_refresh_tokens` (
	`token_hash` text PRIMARY KEY NOT NULL,
	`tenant_id` text NOT NULL,
	`family_id` text NOT NULL,
	`spent_at` integer NOT NULL,
	FOREIGN KEY (`tenant_id`) REFERENCES `tenants`(`id`) ON UPDATE no action ON DELETE no action,
	FOREIGN KEY (`family_id`) REFERENCES `refresh_token_families`(`id`) ON UPDATE no action ON DELETE no action
);
--> statement-breakpoint
CREATE INDEX `spent_refresh_tokens_tenant_idx` ON `spent_refresh_tokens` (`tenant_id`);--> statement-breakpoint
CREATE INDEX `spent_refresh_tokens_family_idx` ON `spent_refresh_tokens` (`family_id`);