-- `orders` again with the same columns and indexes; only the CHECK on
-- `set_aside` changes, from `IN (...)` to comparisons. SQLite evaluates an
-- IN list inside a CHECK by building a small temporary table on every
-- insert, which cost about 2 µs per order, more than the insert itself.

CREATE TABLE orders_new (
    id          INTEGER PRIMARY KEY,
    campaign_id INTEGER NOT NULL REFERENCES campaigns (id),
    line        INTEGER NOT NULL,
    order_id    TEXT,
    phone       TEXT    NOT NULL,
    country     TEXT,
    other       TEXT    NOT NULL DEFAULT '',
    batch_seq   INTEGER,
    set_aside   TEXT    CHECK (set_aside = 'invalid' OR set_aside = 'duplicate' OR set_aside = 'suppressed'),
    reason      TEXT,
    CHECK (batch_seq IS NULL OR set_aside IS NULL)
);
INSERT INTO orders_new SELECT id, campaign_id, line, order_id, phone, country, other, batch_seq, set_aside, reason FROM orders;
DROP TABLE orders;
ALTER TABLE orders_new RENAME TO orders;
CREATE INDEX orders_by_batch ON orders (campaign_id, batch_seq) WHERE batch_seq IS NOT NULL;
CREATE INDEX orders_set_aside ON orders (campaign_id, set_aside) WHERE set_aside IS NOT NULL;
