-- Calls found by index, matched only to the order that made them, and
-- nothing kept of calls that are not this ledger's (see the SQLite
-- migration of the same name).

ALTER TABLE order_keys ADD COLUMN order_row BIGINT;

CREATE INDEX temp_orders_by_line ON orders (campaign_id, line);
UPDATE order_keys k SET order_row = (
    SELECT o.id FROM orders o
    WHERE o.campaign_id = k.campaign_id AND o.line = k.line
      AND (o.set_aside IS NULL OR o.set_aside = 'suppressed')
      AND CASE k.kind WHEN 0 THEN o.phone ELSE o.order_id END = k.key
    ORDER BY o.id LIMIT 1);
DROP INDEX temp_orders_by_line;

CREATE INDEX order_keys_by_order_id ON order_keys (key) WHERE kind = 1;

ALTER TABLE calls ADD COLUMN order_row BIGINT;
ALTER TABLE calls ADD COLUMN matched_by TEXT CHECK (matched_by IN ('order_id', 'phone'));
ALTER TABLE calls ALTER COLUMN raw DROP NOT NULL;

UPDATE calls c SET
    order_row = (SELECT k.order_row FROM order_keys k
                 WHERE k.campaign_id = c.campaign_id AND k.kind = 1 AND k.key = c.matched_order_id),
    matched_by = CASE WHEN c.order_id = c.matched_order_id THEN 'order_id' ELSE 'phone' END
WHERE c.campaign_id IS NOT NULL;
UPDATE calls SET order_id = NULL, task_id = NULL, caller = NULL, callee = NULL, answered = FALSE,
    start_ms = NULL, answer_ms = NULL, end_ms = NULL, ring_ms = NULL, ring_seconds = NULL,
    call_seconds = NULL, hangup_by = NULL, hangup_code = NULL, hangup_reason = NULL,
    call_status = NULL, intent = NULL, record_url = NULL, price = NULL, raw = NULL
WHERE campaign_id IS NULL;

DROP INDEX calls_by_order;
CREATE INDEX calls_by_order ON calls (campaign_id, order_row)
    INCLUDE (answered, call_seconds, matched_by, start_ms, received_at_ms, hangup_reason, intent, call_id);
CREATE INDEX calls_by_intent ON calls (campaign_id, intent) WHERE answered AND intent IS NOT NULL;
