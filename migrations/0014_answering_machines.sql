ALTER TABLE `calls` ADD `machine_detection` text;--> statement-breakpoint
ALTER TABLE `calls` ADD `answered_by` text;--> statement-breakpoint
ALTER TABLE `calls` ADD `machine_outcome` text;--> statement-breakpoint
ALTER TABLE `calls` ADD `voicemail_chars` integer;--> statement-breakpoint
ALTER TABLE `calls` ADD `voicemail_sha256` text;