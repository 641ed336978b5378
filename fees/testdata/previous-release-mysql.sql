-- The money tables as the release before versioned migrations left them
-- (GORM AutoMigrate; mariadb-dump --no-data), with a few rows.
CREATE TABLE `accounts` (
  `id` bigint(20) NOT NULL AUTO_INCREMENT,
  `kind` varchar(8) NOT NULL,
  `owner_id` bigint(20) NOT NULL,
  `currency` varchar(3) NOT NULL,
  `balance` bigint(20) NOT NULL,
  `closed` tinyint(1) NOT NULL DEFAULT 0,
  `created_at` datetime(3) DEFAULT NULL,
  PRIMARY KEY (`id`),
  UNIQUE KEY `owner` (`kind`,`owner_id`,`currency`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;
CREATE TABLE `dues_audits` (
  `id` bigint(20) NOT NULL AUTO_INCREMENT,
  `room_id` bigint(20) NOT NULL,
  `by` bigint(20) NOT NULL,
  `action` varchar(16) NOT NULL,
  `detail` text NOT NULL,
  `created_at` datetime(3) DEFAULT NULL,
  PRIMARY KEY (`id`),
  KEY `idx_dues_audits_room_id` (`room_id`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;
CREATE TABLE `dues_policies` (
  `id` bigint(20) NOT NULL AUTO_INCREMENT,
  `room_id` bigint(20) NOT NULL,
  `amount` bigint(20) NOT NULL,
  `period` varchar(8) NOT NULL,
  `due_day` bigint(20) NOT NULL,
  `effective_from` varchar(8) NOT NULL,
  `set_by` bigint(20) NOT NULL,
  `created_at` datetime(3) DEFAULT NULL,
  PRIMARY KEY (`id`),
  KEY `idx_dues_policies_room_id` (`room_id`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;
CREATE TABLE `dues_records` (
  `id` bigint(20) NOT NULL AUTO_INCREMENT,
  `room_id` bigint(20) NOT NULL,
  `period` varchar(8) NOT NULL,
  `user_id` bigint(20) NOT NULL,
  `amount` bigint(20) NOT NULL,
  `waived` tinyint(1) NOT NULL,
  `memo` varchar(800) NOT NULL,
  `by` bigint(20) NOT NULL,
  `created_at` datetime(3) DEFAULT NULL,
  PRIMARY KEY (`id`),
  KEY `room_period` (`room_id`,`period`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;
CREATE TABLE `dues_reminders` (
  `id` bigint(20) NOT NULL AUTO_INCREMENT,
  `room_id` bigint(20) NOT NULL,
  `period` varchar(8) NOT NULL,
  `created_at` datetime(3) DEFAULT NULL,
  PRIMARY KEY (`id`),
  UNIQUE KEY `reminder_room_period` (`room_id`,`period`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;
CREATE TABLE `entries` (
  `id` bigint(20) NOT NULL AUTO_INCREMENT,
  `transfer_id` bigint(20) NOT NULL,
  `account_id` bigint(20) NOT NULL,
  `amount` bigint(20) NOT NULL,
  `balance_after` bigint(20) NOT NULL,
  `created_at` datetime(3) DEFAULT NULL,
  PRIMARY KEY (`id`),
  KEY `idx_entries_transfer_id` (`transfer_id`),
  KEY `account_entries` (`account_id`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;
CREATE TABLE `outboxes` (
  `id` bigint(20) NOT NULL AUTO_INCREMENT,
  `room_id` bigint(20) NOT NULL,
  `body` mediumtext NOT NULL,
  `fee` text NOT NULL,
  `published_at` datetime(3) DEFAULT NULL,
  `created_at` datetime(3) DEFAULT NULL,
  PRIMARY KEY (`id`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;
CREATE TABLE `payments` (
  `id` bigint(20) NOT NULL AUTO_INCREMENT,
  `user_id` bigint(20) NOT NULL,
  `idem_key` varchar(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  `kind` varchar(10) NOT NULL,
  `provider` varchar(16) NOT NULL,
  `order_id` varchar(64) NOT NULL,
  `amount` bigint(20) NOT NULL,
  `status` varchar(10) NOT NULL,
  `failure` varchar(300) NOT NULL,
  `payment_key` varchar(200) NOT NULL,
  `test` tinyint(1) NOT NULL,
  `created_at` datetime(3) DEFAULT NULL,
  `updated_at` datetime(3) DEFAULT NULL,
  PRIMARY KEY (`id`),
  UNIQUE KEY `payment_idem` (`user_id`,`idem_key`),
  UNIQUE KEY `idx_payments_order_id` (`order_id`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;
CREATE TABLE `schedule_runs` (
  `id` bigint(20) NOT NULL AUTO_INCREMENT,
  `schedule_id` bigint(20) NOT NULL,
  `due_at` datetime(3) NOT NULL,
  `period` varchar(8) NOT NULL,
  `attempt` bigint(20) NOT NULL,
  `status` varchar(8) NOT NULL,
  `reason` varchar(32) NOT NULL,
  `transfer_id` bigint(20) NOT NULL,
  `claimed_at` datetime(3) NOT NULL,
  `updated_at` datetime(3) DEFAULT NULL,
  PRIMARY KEY (`id`),
  UNIQUE KEY `schedule_run` (`schedule_id`,`due_at`),
  KEY `idx_schedule_runs_status` (`status`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;
CREATE TABLE `schedules` (
  `id` bigint(20) NOT NULL AUTO_INCREMENT,
  `user_id` bigint(20) NOT NULL,
  `room_id` bigint(20) NOT NULL,
  `amount` bigint(20) NOT NULL,
  `day_of_month` bigint(20) NOT NULL,
  `at` datetime(3) DEFAULT NULL,
  `until` datetime(3) DEFAULT NULL,
  `next_run` datetime(3) DEFAULT NULL,
  `state` varchar(10) NOT NULL,
  `created_at` datetime(3) DEFAULT NULL,
  `updated_at` datetime(3) DEFAULT NULL,
  PRIMARY KEY (`id`),
  KEY `idx_schedules_user_id` (`user_id`),
  KEY `schedule_due` (`state`,`next_run`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;
CREATE TABLE `transfers` (
  `id` bigint(20) NOT NULL AUTO_INCREMENT,
  `user_id` bigint(20) NOT NULL,
  `idem_key` varchar(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  `request_hash` varchar(64) NOT NULL,
  `kind` varchar(8) NOT NULL,
  `from_account` bigint(20) NOT NULL,
  `to_account` bigint(20) NOT NULL,
  `amount` bigint(20) NOT NULL,
  `room_id` bigint(20) NOT NULL,
  `member_id` bigint(20) NOT NULL,
  `period` varchar(10) NOT NULL,
  `memo` varchar(800) NOT NULL,
  `refused` varchar(32) NOT NULL,
  `test` tinyint(1) NOT NULL DEFAULT 0,
  `created_at` datetime(3) DEFAULT NULL,
  PRIMARY KEY (`id`),
  UNIQUE KEY `idem` (`user_id`,`idem_key`),
  KEY `idx_transfers_room_id` (`room_id`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;
CREATE TABLE `wallet_pins` (
  `user_id` bigint(20) NOT NULL,
  `hash` varchar(60) NOT NULL,
  `failures` bigint(20) NOT NULL,
  `locked_until` datetime(3) DEFAULT NULL,
  `updated_at` datetime(3) DEFAULT NULL,
  PRIMARY KEY (`user_id`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;
INSERT INTO `accounts` VALUES (1,'external',0,'KRW',-50000,0,'2026-11-30 10:00:00.000'),(2,'wallet',7,'KRW',50000,0,'2026-11-30 10:00:00.000');
INSERT INTO `transfers` VALUES (1,7,'pay:moim-0001','h','topup',1,2,50000,0,7,'','sandbox','',1,'2026-11-30 10:00:00.000');
INSERT INTO `entries` VALUES (1,1,1,-50000,-50000,'2026-11-30 10:00:00.000'),(2,1,2,50000,50000,'2026-11-30 10:00:00.000');
INSERT INTO `payments` VALUES (1,7,'KeyA','topup','sandbox','moim-0001',50000,'confirmed','','',1,'2026-11-30 10:00:00.000','2026-11-30 10:00:00.000');
