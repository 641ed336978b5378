-- The money tables as GORM's AutoMigrate created them up to the release
-- before versioned migrations (captured from that release's moim.db), so
-- a database it created is already at this version; IF NOT EXISTS lets
-- goose record it on such a database without change.
-- +goose Up
CREATE TABLE IF NOT EXISTS `accounts` (`id` integer PRIMARY KEY AUTOINCREMENT,`kind` text NOT NULL,`owner_id` integer NOT NULL,`currency` text NOT NULL,`balance` integer NOT NULL,`closed` numeric NOT NULL DEFAULT false,`created_at` datetime);
CREATE UNIQUE INDEX IF NOT EXISTS `owner` ON `accounts`(`kind`,`owner_id`,`currency`);
CREATE TABLE IF NOT EXISTS `transfers` (`id` integer PRIMARY KEY AUTOINCREMENT,`user_id` integer NOT NULL,`idem_key` text NOT NULL,`request_hash` text NOT NULL,`kind` text NOT NULL,`from_account` integer NOT NULL,`to_account` integer NOT NULL,`amount` integer NOT NULL,`room_id` integer NOT NULL,`member_id` integer NOT NULL,`period` text NOT NULL,`memo` text NOT NULL,`refused` text NOT NULL,`test` numeric NOT NULL DEFAULT false,`created_at` datetime);
CREATE INDEX IF NOT EXISTS `idx_transfers_room_id` ON `transfers`(`room_id`);
CREATE UNIQUE INDEX IF NOT EXISTS `idem` ON `transfers`(`user_id`,`idem_key`);
CREATE TABLE IF NOT EXISTS `entries` (`id` integer PRIMARY KEY AUTOINCREMENT,`transfer_id` integer NOT NULL,`account_id` integer NOT NULL,`amount` integer NOT NULL,`balance_after` integer NOT NULL,`created_at` datetime);
CREATE INDEX IF NOT EXISTS `account_entries` ON `entries`(`account_id`);
CREATE INDEX IF NOT EXISTS `idx_entries_transfer_id` ON `entries`(`transfer_id`);
CREATE TABLE IF NOT EXISTS `outboxes` (`id` integer PRIMARY KEY AUTOINCREMENT,`room_id` integer NOT NULL,`body` mediumtext NOT NULL,`fee` text NOT NULL,`published_at` datetime,`created_at` datetime);
CREATE TABLE IF NOT EXISTS `dues_policies` (`id` integer PRIMARY KEY AUTOINCREMENT,`room_id` integer NOT NULL,`amount` integer NOT NULL,`period` text NOT NULL,`due_day` integer NOT NULL,`effective_from` text NOT NULL,`set_by` integer NOT NULL,`created_at` datetime);
CREATE INDEX IF NOT EXISTS `idx_dues_policies_room_id` ON `dues_policies`(`room_id`);
CREATE TABLE IF NOT EXISTS `dues_records` (`id` integer PRIMARY KEY AUTOINCREMENT,`room_id` integer NOT NULL,`period` text NOT NULL,`user_id` integer NOT NULL,`amount` integer NOT NULL,`waived` numeric NOT NULL,`memo` text NOT NULL,`by` integer NOT NULL,`created_at` datetime);
CREATE INDEX IF NOT EXISTS `room_period` ON `dues_records`(`room_id`,`period`);
CREATE TABLE IF NOT EXISTS `dues_audits` (`id` integer PRIMARY KEY AUTOINCREMENT,`room_id` integer NOT NULL,`by` integer NOT NULL,`action` text NOT NULL,`detail` text NOT NULL,`created_at` datetime);
CREATE INDEX IF NOT EXISTS `idx_dues_audits_room_id` ON `dues_audits`(`room_id`);
CREATE TABLE IF NOT EXISTS `schedules` (`id` integer PRIMARY KEY AUTOINCREMENT,`user_id` integer NOT NULL,`room_id` integer NOT NULL,`amount` integer NOT NULL,`day_of_month` integer NOT NULL,`at` datetime,`until` datetime,`next_run` datetime,`state` text NOT NULL,`created_at` datetime,`updated_at` datetime);
CREATE INDEX IF NOT EXISTS `schedule_due` ON `schedules`(`state`,`next_run`);
CREATE INDEX IF NOT EXISTS `idx_schedules_user_id` ON `schedules`(`user_id`);
CREATE TABLE IF NOT EXISTS `schedule_runs` (`id` integer PRIMARY KEY AUTOINCREMENT,`schedule_id` integer NOT NULL,`due_at` datetime NOT NULL,`period` text NOT NULL,`attempt` integer NOT NULL,`status` text NOT NULL,`reason` text NOT NULL,`transfer_id` integer NOT NULL,`claimed_at` datetime NOT NULL,`updated_at` datetime);
CREATE INDEX IF NOT EXISTS `idx_schedule_runs_status` ON `schedule_runs`(`status`);
CREATE UNIQUE INDEX IF NOT EXISTS `schedule_run` ON `schedule_runs`(`schedule_id`,`due_at`);
CREATE TABLE IF NOT EXISTS `dues_reminders` (`id` integer PRIMARY KEY AUTOINCREMENT,`room_id` integer NOT NULL,`period` text NOT NULL,`created_at` datetime);
CREATE UNIQUE INDEX IF NOT EXISTS `reminder_room_period` ON `dues_reminders`(`room_id`,`period`);
CREATE TABLE IF NOT EXISTS `payments` (`id` integer PRIMARY KEY AUTOINCREMENT,`user_id` integer NOT NULL,`idem_key` text NOT NULL,`kind` text NOT NULL,`provider` text NOT NULL,`order_id` text NOT NULL,`amount` integer NOT NULL,`status` text NOT NULL,`failure` text NOT NULL,`payment_key` text NOT NULL,`test` numeric NOT NULL,`created_at` datetime,`updated_at` datetime);
CREATE UNIQUE INDEX IF NOT EXISTS `idx_payments_order_id` ON `payments`(`order_id`);
CREATE UNIQUE INDEX IF NOT EXISTS `payment_idem` ON `payments`(`user_id`,`idem_key`);
CREATE TABLE IF NOT EXISTS `wallet_pins` (`user_id` integer,`hash` text NOT NULL,`failures` integer NOT NULL,`locked_until` datetime,`updated_at` datetime,PRIMARY KEY (`user_id`));
