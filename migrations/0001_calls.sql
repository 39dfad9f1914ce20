CREATE TABLE `call_events` (
	`id` text PRIMARY KEY NOT NULL,
	`tenant_id` text NOT NULL,
	`call_id` text NOT NULL,
	`seq` integer NOT NULL,
	`source` text NOT NULL,
	`event` text NOT NULL,
	`from_status` text,
	`to_status` text,
	`outcome` text NOT NULL,
	`carrier_sequence` integer,
	`carrier_timestamp` integer,
	`detail` text,
	`occurred_at` integer NOT NULL,
	FOREIGN KEY (`tenant_id`) REFERENCES `tenants`(`id`) ON UPDATE no action ON DELETE no action
);
--> statement-breakpoint
CREATE INDEX `call_events_tenant_call_idx` ON `call_events` (`tenant_id`,`call_id`,`seq`);--> statement-breakpoint
CREATE UNIQUE INDEX `call_events_call_seq_unique` ON `call_events` (`call_id`,`seq`);--> statement-breakpoint
CREATE TABLE `calls` (
	`id` text PRIMARY KEY NOT NULL,
	`tenant_id` text NOT NULL,
	`session_id` text NOT NULL,
	`carrier` text NOT NULL,
	`carrier_call_id` text,
	`direction` text NOT NULL,
	`from_number` text NOT NULL,
	`to_number` text NOT NULL,
	`status` text NOT NULL,
	`failure_reason` text,
	`answered_at` integer,
	`ended_at` integer,
	`created_at` integer NOT NULL,
	`updated_at` integer NOT NULL,
	FOREIGN KEY (`tenant_id`) REFERENCES `tenants`(`id`) ON UPDATE no action ON DELETE no action
);
--> statement-breakpoint
CREATE INDEX `calls_tenant_time_idx` ON `calls` (`tenant_id`,`created_at`);--> statement-breakpoint
CREATE INDEX `calls_tenant_status_idx` ON `calls` (`tenant_id`,`status`);--> statement-breakpoint
CREATE UNIQUE INDEX `calls_carrier_call_unique` ON `calls` (`carrier`,`carrier_call_id`);--> statement-breakpoint
CREATE TABLE `phone_numbers` (
	`id` text PRIMARY KEY NOT NULL,
	`tenant_id` text NOT NULL,
	`e164` text NOT NULL,
	`carrier` text NOT NULL,
	`provider` text,
	`instructions` text,
	`codec` text DEFAULT 'PCMU' NOT NULL,
	`created_at` integer NOT NULL,
	FOREIGN KEY (`tenant_id`) REFERENCES `tenants`(`id`) ON UPDATE no action ON DELETE no action
);
--> statement-breakpoint
CREATE UNIQUE INDEX `phone_numbers_e164_unique` ON `phone_numbers` (`e164`);--> statement-breakpoint
CREATE INDEX `phone_numbers_tenant_idx` ON `phone_numbers` (`tenant_id`);--> statement-breakpoint
CREATE TABLE `sessions` (
	`id` text PRIMARY KEY NOT NULL,
	`tenant_id` text NOT NULL,
	`channel` text NOT NULL,
	`status` text NOT NULL,
	`provider` text NOT NULL,
	`instructions` text,
	`correlation_id` text NOT NULL,
	`created_at` integer NOT NULL,
	`ended_at` integer,
	FOREIGN KEY (`tenant_id`) REFERENCES `tenants`(`id`) ON UPDATE no action ON DELETE no action
);
--> statement-breakpoint
CREATE INDEX `sessions_tenant_time_idx` ON `sessions` (`tenant_id`,`created_at`);