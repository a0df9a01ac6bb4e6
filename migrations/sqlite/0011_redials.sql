-- Redials: each call again of a contact is an order of its own, linked to
-- the contact's first order, with its attempt number; and a redial set
-- aside at its claim because its contact was settled meanwhile.

-- `orders` again: SQLite cannot change a CHECK, and `set_aside` gains
-- `settled`. Row ids are kept (calls and claims name them).
CREATE TABLE orders_new (
    id          INTEGER PRIMARY KEY,
    campaign_id INTEGER NOT NULL REFERENCES campaigns (id),
    line        INTEGER NOT NULL,
    order_id    TEXT,
    phone       TEXT    NOT NULL,
    country     TEXT,
    other       TEXT    NOT NULL DEFAULT '',
    batch_seq   INTEGER,
    set_aside   TEXT    CHECK (set_aside = 'invalid' OR set_aside = 'duplicate' OR set_aside = 'suppressed'
                               OR set_aside = 'settled'),
    reason      TEXT,
    -- 1 for a contact's first order; 2, 3, … for its redials.
    attempt     INTEGER NOT NULL DEFAULT 1 CHECK (attempt >= 1),
    -- A redial's contact: the row of its first order (NULL for a first order).
    contact_row INTEGER,
    CHECK (batch_seq IS NULL OR set_aside IS NULL),
    CHECK ((attempt = 1) = (contact_row IS NULL))
);
INSERT INTO orders_new (id, campaign_id, line, order_id, phone, country, other, batch_seq, set_aside, reason)
    SELECT id, campaign_id, line, order_id, phone, country, other, batch_seq, set_aside, reason FROM orders;
DROP TABLE orders;
ALTER TABLE orders_new RENAME TO orders;
CREATE INDEX orders_by_batch ON orders (campaign_id, batch_seq) WHERE batch_seq IS NOT NULL;
CREATE INDEX orders_set_aside ON orders (campaign_id, set_aside) WHERE set_aside IS NOT NULL;
-- One order per attempt of a contact: planning twice (a crash, a second
-- runner) plans once. Also how a contact's redials are found.
CREATE UNIQUE INDEX orders_redials ON orders (contact_row, attempt) WHERE contact_row IS NOT NULL;

-- The job's `[redial]` as of the campaign's last run (JSON), for what has
-- no job file: the webhook's opt-outs and `status`'s funnel.
ALTER TABLE campaigns ADD COLUMN redial_policy TEXT;
-- `cancel` stops a campaign's redials: none is planned from then on.
ALTER TABLE campaigns ADD COLUMN redials_stopped_at_ms INTEGER;
