-- The do-not-call list, and batches that are never sent (see the SQLite
-- migration of the same name).

CREATE TABLE suppressions (
    phone           TEXT    COLLATE "C" NOT NULL,
    scope           BIGINT  NOT NULL DEFAULT 0,
    reason          TEXT,
    until_ms        BIGINT,
    added_at_ms     BIGINT  NOT NULL,
    source          TEXT    NOT NULL,
    PRIMARY KEY (phone, scope)
);

ALTER TABLE batches DROP CONSTRAINT batches_state_check;
ALTER TABLE batches ADD CONSTRAINT batches_state_check
    CHECK (state IN ('pending', 'sending', 'accepted', 'rejected', 'failed', 'uncertain', 'cancelled'));

-- Orders set aside as suppressed, counted as they are (as invalid and
-- duplicate ones are).
ALTER TABLE campaigns ADD COLUMN suppressed_orders BIGINT NOT NULL DEFAULT 0;
