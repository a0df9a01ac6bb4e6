-- Calls found by index, matched only to the order that made them, and
-- nothing kept of calls that are not this ledger's.

-- Each claimed key names the order holding it, so a call's orderId (or,
-- without one, its number) leads to the order by index lookups alone.
ALTER TABLE order_keys ADD COLUMN order_row INTEGER;

CREATE INDEX temp_orders_by_line ON orders (campaign_id, line);
UPDATE order_keys SET order_row = (
    SELECT o.id FROM orders o
    WHERE o.campaign_id = order_keys.campaign_id AND o.line = order_keys.line
      AND (o.set_aside IS NULL OR o.set_aside = 'suppressed')
      AND CASE order_keys.kind WHEN 0 THEN o.phone ELSE o.order_id END = order_keys.key
    ORDER BY o.id LIMIT 1);
DROP INDEX temp_orders_by_line;

-- A call's orderId is looked up among every campaign's order ids; a new
-- campaign's order id already used by another is set aside at ingest.
CREATE INDEX order_keys_by_order_id ON order_keys (key) WHERE kind = 1;

-- `calls` again: `order_row` (the order's row) replaces the order id as
-- the link, `matched_by` says how it was found, and a call of no order of
-- this ledger keeps its callId only (`raw` may be NULL).
CREATE TABLE calls_new (
    call_id         TEXT    PRIMARY KEY,
    order_id        TEXT,
    campaign_id     INTEGER,
    order_row       INTEGER,
    matched_order_id TEXT,
    -- 'order_id': the call names the order; 'phone': it names none, and
    -- its number is the order's (never settles a batch). NULL: not this
    -- ledger's call.
    matched_by      TEXT    CHECK (matched_by = 'order_id' OR matched_by = 'phone'),
    task_id         TEXT,
    caller          TEXT,
    callee          TEXT,
    answered        INTEGER NOT NULL CHECK (answered IN (0, 1)),
    start_ms        INTEGER,
    answer_ms       INTEGER,
    end_ms          INTEGER,
    ring_ms         INTEGER,
    ring_seconds    INTEGER,
    call_seconds    INTEGER,
    hangup_by       INTEGER,
    hangup_code     TEXT,
    hangup_reason   TEXT,
    call_status     TEXT,
    intent          TEXT,
    record_url      TEXT,
    price           REAL,
    raw             TEXT,
    source          TEXT    NOT NULL,
    received_at_ms  INTEGER NOT NULL
) WITHOUT ROWID;

INSERT INTO calls_new
    SELECT c.call_id, c.order_id, c.campaign_id,
           (SELECT k.order_row FROM order_keys k
            WHERE k.campaign_id = c.campaign_id AND k.kind = 1 AND k.key = c.matched_order_id),
           c.matched_order_id,
           CASE WHEN c.campaign_id IS NULL THEN NULL
                WHEN c.order_id = c.matched_order_id THEN 'order_id' ELSE 'phone' END,
           c.task_id, c.caller, c.callee, c.answered, c.start_ms, c.answer_ms, c.end_ms,
           c.ring_ms, c.ring_seconds, c.call_seconds, c.hangup_by, c.hangup_code,
           c.hangup_reason, c.call_status, c.intent, c.record_url, c.price, c.raw,
           c.source, c.received_at_ms
    FROM calls c WHERE c.campaign_id IS NOT NULL;
-- Calls of orders this ledger does not know: the callId stays (a repeat is
-- not counted twice), their numbers, texts and raw records go.
INSERT INTO calls_new (call_id, answered, source, received_at_ms)
    SELECT call_id, 0, source, received_at_ms FROM calls WHERE campaign_id IS NULL;
DROP TABLE calls;
ALTER TABLE calls_new RENAME TO calls;

-- Every question `status`, `orders` and reconciliation ask of a
-- campaign's calls is answered from these, without visiting the rows.
CREATE INDEX calls_by_order ON calls (campaign_id, order_row, answered, call_seconds, matched_by,
    start_ms, received_at_ms, hangup_reason, intent);
CREATE INDEX calls_by_intent ON calls (campaign_id, intent) WHERE answered AND intent IS NOT NULL;
