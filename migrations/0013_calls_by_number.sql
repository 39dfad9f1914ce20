CREATE INDEX `calls_tenant_from_idx` ON `calls` (`tenant_id`,`from_number`);--> statement-breakpoint
CREATE INDEX `calls_tenant_to_idx` ON `calls` (`tenant_id`,`to_number`);