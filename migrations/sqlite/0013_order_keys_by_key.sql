-- One B-tree for the claimed keys instead of two: the primary key leads
-- with the key, so a call's order id is found among every campaign's ids
-- by the primary key itself, and the index that did that goes. A plan
-- writes each claim once instead of twice.
CREATE TABLE order_keys_new (
    campaign_id     INTEGER NOT NULL REFERENCES campaigns (id),
    -- 0: phone, 1: order id.
    kind            INTEGER NOT NULL CHECK (kind IN (0, 1)),
    key             TEXT    NOT NULL,
    -- The line of the order that claimed it, for "duplicate of line N".
    line            INTEGER NOT NULL,
    -- The order holding it.
    order_row       INTEGER,
    PRIMARY KEY (kind, key, campaign_id)
) WITHOUT ROWID;
INSERT INTO order_keys_new (campaign_id, kind, key, line, order_row)
    SELECT campaign_id, kind, key, line, order_row FROM order_keys ORDER BY kind, key, campaign_id;
DROP TABLE order_keys;
ALTER TABLE order_keys_new RENAME TO order_keys;
