CREATE TABLE `prompt_versions` (
	`tenant_id` text NOT NULL,
	`prompt_id` text NOT NULL,
	`version` integer NOT NULL,
	`instructions` text NOT NULL,
	`voice` text,
	`tools` text,
	`created_by` text,
	`created_at` integer NOT NULL,
	PRIMARY KEY(`prompt_id`, `version`),
	FOREIGN KEY (`tenant_id`) REFERENCES `tenants`(`id`) ON UPDATE no action ON DELETE no action,
	FOREIGN KEY (`prompt_id`) REFERENCES `prompts`(`id`) ON UPDATE no action ON DELETE no action
);
--> statement-breakpoint
CREATE INDEX `prompt_versions_tenant_idx` ON `prompt_versions` (`tenant_id`);--> statement-breakpoint
CREATE TABLE `prompts` (
	`id` text PRIMARY KEY NOT NULL,
	`tenant_id` text NOT NULL,
	`name` text NOT NULL,
	`current_version` integer NOT NULL,
	`created_at` integer NOT NULL,
	`updated_at` integer NOT NULL,
	FOREIGN KEY (`tenant_id`) REFERENCES `tenants`(`id`) ON UPDATE no action ON DELETE no action
);
--> statement-breakpoint
CREATE INDEX `prompts_tenant_idx` ON `prompts` (`tenant_id`);--> statement-breakpoint
ALTER TABLE `phone_numbers` ADD `prompt_id` text;--> statement-breakpoint
ALTER TABLE `sessions` ADD `prompt_id` text;--> statement-breakpoint
ALTER TABLE `sessions` ADD `prompt_version` integer;