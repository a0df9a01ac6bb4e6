-- Ingest in two steps, so that big files never pay for random index
-- inserts row by row: rows are first appended as "staged" orders (no batch,
-- not set aside), then planned set-wise: duplicates found by sorting, keys
-- claimed by one sorted insert, batches cut.
--
-- The keys every live order claims move from two unique indexes on
-- `orders` to `order_keys`, filled in key order.

CREATE TABLE order_keys (
    campaign_id     INTEGER NOT NULL REFERENCES campaigns (id),
    -- 0: phone, 1: order id.
    kind            INTEGER NOT NULL CHECK (kind IN (0, 1)),
    key             TEXT    NOT NULL,
    -- The line of the order that claimed it, for "duplicate of line N".
    line            INTEGER NOT NULL,
    PRIMARY KEY (campaign_id, kind, key)
) WITHOUT ROWID;

INSERT INTO order_keys (campaign_id, kind, key, line)
    SELECT campaign_id, 0, phone, line FROM orders WHERE set_aside IS NULL ORDER BY campaign_id, phone;
INSERT INTO order_keys (campaign_id, kind, key, line)
    SELECT campaign_id, 1, order_id, line FROM orders WHERE set_aside IS NULL ORDER BY campaign_id, order_id;

DROP INDEX orders_by_order_id;
DROP INDEX orders_by_phone;

-- Orders of a campaign with a row id above this are staged: read, but not
-- yet planned into batches.
ALTER TABLE campaigns ADD COLUMN planned_through INTEGER NOT NULL DEFAULT 0;
UPDATE campaigns SET planned_through = COALESCE((SELECT MAX(id) FROM orders WHERE orders.campaign_id = campaigns.id), 0);

-- A staged order has neither a batch nor a reason to be set aside; the old
-- CHECK forbade that, and SQLite cannot drop a CHECK, so `orders` is
-- rebuilt with the same columns.
CREATE TABLE orders_new (
    id          INTEGER PRIMARY KEY,
    campaign_id INTEGER NOT NULL REFERENCES campaigns (id),
    line        INTEGER NOT NULL,
    order_id    TEXT,
    phone       TEXT    NOT NULL,
    country     TEXT,
    other       TEXT    NOT NULL DEFAULT '',
    batch_seq   INTEGER,
    set_aside   TEXT    CHECK (set_aside IN ('invalid', 'duplicate', 'suppressed')),
    reason      TEXT,
    CHECK (batch_seq IS NULL OR set_aside IS NULL)
);
INSERT INTO orders_new SELECT id, campaign_id, line, order_id, phone, country, other, batch_seq, set_aside, reason FROM orders;
DROP TABLE orders;
ALTER TABLE orders_new RENAME TO orders;
CREATE INDEX orders_by_batch ON orders (campaign_id, batch_seq) WHERE batch_seq IS NOT NULL;
CREATE INDEX orders_set_aside ON orders (campaign_id, set_aside) WHERE set_aside IS NOT NULL;
