-- 0002: the dispatcher refills one webhook's lane in due order. This partial index holds only the
-- deliveries with an attempt to make (next_attempt_at is set exactly while PENDING), so that query
-- reads that webhook's due rows and nothing else.
CREATE INDEX `delivery_due_webhook_id_next_attempt_at` ON `deliveries` (`webhook_id`, `next_attempt_at`) WHERE next_attempt_at IS NOT NULL;
