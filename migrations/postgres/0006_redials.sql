-- Redials: each call again of a contact is an order of its own, linked to
-- the contact's first order, with its attempt number; and a redial set
-- aside at its claim because its contact was settled meanwhile.

ALTER TABLE orders DROP CONSTRAINT orders_set_aside_check;
ALTER TABLE orders ADD CONSTRAINT orders_set_aside_check
    CHECK (set_aside IN ('invalid', 'duplicate', 'suppressed', 'settled'));
-- 1 for a contact's first order; 2, 3, … for its redials.
ALTER TABLE orders ADD COLUMN attempt INTEGER NOT NULL DEFAULT 1 CHECK (attempt >= 1);
-- A redial's contact: the row of its first order (NULL for a first order).
ALTER TABLE orders ADD COLUMN contact_row BIGINT;
ALTER TABLE orders ADD CONSTRAINT orders_redial_has_contact CHECK ((attempt = 1) = (contact_row IS NULL));
-- One order per attempt of a contact: planning twice (a crash, a second
-- runner) plans once. Also how a contact's redials are found.
CREATE UNIQUE INDEX orders_redials ON orders (contact_row, attempt) WHERE contact_row IS NOT NULL;

-- The job's `[redial]` as of the campaign's last run (JSON), for what has
-- no job file: the webhook's opt-outs and `status`'s funnel.
ALTER TABLE campaigns ADD COLUMN redial_policy TEXT;
-- `cancel` stops a campaign's redials: none is planned from then on.
ALTER TABLE campaigns ADD COLUMN redials_stopped_at_ms BIGINT;
