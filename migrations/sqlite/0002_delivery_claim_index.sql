-- 0002: an index for claiming one webhook's due deliveries without reading the others' backlog.
CREATE INDEX `delivery_webhook_id_status_next_attempt_at` ON `deliveries` (`webhook_id`, `status`, `next_attempt_at`);
