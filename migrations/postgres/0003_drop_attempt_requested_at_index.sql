-- 0003: no query reads delivery attempts by requested_at (they are read by delivery, in number
-- order), and every recorded attempt paid for an entry in this index.
DROP INDEX "deliveryattempt_requested_at";
