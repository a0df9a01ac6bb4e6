-- The do-not-call list, and batches that are never sent.

-- A number not to call: for every campaign (`scope` 0) or for one campaign
-- (`scope` = its id: the numbers of a job's own list files). The number is
-- normalized as contacts are (`orders.phone`). An entry applies until
-- `until_ms` (never expires when null).
CREATE TABLE suppressions (
    phone           TEXT    NOT NULL,
    scope           INTEGER NOT NULL DEFAULT 0,
    reason          TEXT,
    until_ms        INTEGER,
    added_at_ms     INTEGER NOT NULL,
    -- Who or what added it: `user@host`, or the list file a job names.
    source          TEXT    NOT NULL,
    PRIMARY KEY (phone, scope)
) WITHOUT ROWID;

-- `batches` again with one more state, `cancelled`: a batch that will
-- never be sent (every order in it was suppressed before it left, or an
-- operator cancelled it). The rebuild runs with foreign keys off; the
-- migrator checks them before it commits.
CREATE TABLE batches_new (
    campaign_id     INTEGER NOT NULL REFERENCES campaigns (id),
    seq             INTEGER NOT NULL,
    country         TEXT    NOT NULL,
    size            INTEGER NOT NULL,
    state           TEXT    NOT NULL DEFAULT 'pending'
                    CHECK (state = 'pending' OR state = 'sending' OR state = 'accepted' OR state = 'rejected'
                           OR state = 'failed' OR state = 'uncertain' OR state = 'cancelled'),
    attempts        INTEGER NOT NULL DEFAULT 0,
    attempts_before_resend INTEGER NOT NULL DEFAULT 0,
    not_before_ms   INTEGER NOT NULL DEFAULT 0,
    code            INTEGER,
    message         TEXT,
    req_id          TEXT,
    updated_at_ms   INTEGER NOT NULL,
    resend_after_ms INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (campaign_id, seq)
) WITHOUT ROWID;
INSERT INTO batches_new
    SELECT campaign_id, seq, country, size, state, attempts, attempts_before_resend, not_before_ms,
           code, message, req_id, updated_at_ms, resend_after_ms
    FROM batches;
DROP TABLE batches;
ALTER TABLE batches_new RENAME TO batches;
CREATE INDEX batches_by_state ON batches (campaign_id, state, seq);
