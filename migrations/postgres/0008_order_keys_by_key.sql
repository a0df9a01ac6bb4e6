-- One B-tree for the claimed keys instead of two: the primary key leads
-- with the key, so a call's order id is found among every campaign's ids
-- by the primary key itself, and the index that did that goes. A plan
-- writes each claim once instead of twice.
ALTER TABLE order_keys DROP CONSTRAINT order_keys_pkey;
DROP INDEX order_keys_by_order_id;
ALTER TABLE order_keys ADD PRIMARY KEY (kind, key, campaign_id);
