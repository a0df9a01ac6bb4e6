-- The ledger: campaigns, their orders and batches, every HTTP attempt, and
-- every operator re-send. Times are Unix milliseconds.

CREATE TABLE campaigns (
    id              INTEGER PRIMARY KEY,
    name            TEXT    NOT NULL UNIQUE,
    created_at_ms   INTEGER NOT NULL,
    -- Data rows of contact files that entered the ledger (as orders in any state).
    rows_read       INTEGER NOT NULL DEFAULT 0,
    -- Ingest checkpoint: the file's fingerprint and where its next record starts.
    source_fingerprint TEXT,
    source_offset   INTEGER NOT NULL DEFAULT 0,
    source_line     INTEGER NOT NULL DEFAULT 0
);

-- One createandcall request: one country, a stable sequence number.
CREATE TABLE batches (
    campaign_id     INTEGER NOT NULL REFERENCES campaigns (id),
    seq             INTEGER NOT NULL,
    country         TEXT    NOT NULL,
    size            INTEGER NOT NULL,
    state           TEXT    NOT NULL DEFAULT 'pending'
                    CHECK (state IN ('pending', 'sending', 'accepted', 'rejected', 'failed', 'uncertain')),
    -- HTTP tries so far, and how many of them came before the last re-send
    -- (the retry budget counts only the tries since).
    attempts        INTEGER NOT NULL DEFAULT 0,
    attempts_before_resend INTEGER NOT NULL DEFAULT 0,
    -- A pending batch is not tried again before this time (retry backoff).
    not_before_ms   INTEGER NOT NULL DEFAULT 0,
    -- The last vendor answer or transport error that decided the state.
    code            INTEGER,
    message         TEXT,
    req_id          TEXT,
    updated_at_ms   INTEGER NOT NULL,
    PRIMARY KEY (campaign_id, seq)
) WITHOUT ROWID;

CREATE INDEX batches_by_state ON batches (campaign_id, state, seq);

-- One input row. A row in a batch has the batch's state; a row set aside at
-- ingest (invalid, duplicate, suppressed) keeps that state for good.
CREATE TABLE orders (
    id              INTEGER PRIMARY KEY,
    campaign_id     INTEGER NOT NULL REFERENCES campaigns (id),
    line            INTEGER NOT NULL,
    order_id        TEXT,
    phone           TEXT    NOT NULL,
    country         TEXT,
    other           TEXT    NOT NULL DEFAULT '',
    batch_seq       INTEGER,
    set_aside       TEXT    CHECK (set_aside IN ('invalid', 'duplicate', 'suppressed')),
    reason          TEXT,
    CHECK ((batch_seq IS NULL) <> (set_aside IS NULL))
);

-- No two live orders of a campaign share an order id or a phone: the ledger
-- itself refuses to plan a second call to anyone.
CREATE UNIQUE INDEX orders_by_order_id ON orders (campaign_id, order_id) WHERE set_aside IS NULL;
CREATE UNIQUE INDEX orders_by_phone ON orders (campaign_id, phone) WHERE set_aside IS NULL;
CREATE INDEX orders_by_batch ON orders (campaign_id, batch_seq) WHERE set_aside IS NULL;
CREATE INDEX orders_set_aside ON orders (campaign_id, set_aside) WHERE set_aside IS NOT NULL;

-- Every HTTP try of a batch. Written (without a result) before the request
-- leaves, completed after.
CREATE TABLE attempts (
    campaign_id     INTEGER NOT NULL,
    batch_seq       INTEGER NOT NULL,
    number          INTEGER NOT NULL,
    started_at_ms   INTEGER NOT NULL,
    duration_ms     INTEGER,
    http_status     INTEGER,
    code            INTEGER,
    message         TEXT,
    req_id          TEXT,
    -- What was decided: accepted, rejected, retry, failed, uncertain, stop, interrupted.
    decision        TEXT,
    PRIMARY KEY (campaign_id, batch_seq, number),
    FOREIGN KEY (campaign_id, batch_seq) REFERENCES batches (campaign_id, seq)
) WITHOUT ROWID;

-- An operator's request to send batches again.
CREATE TABLE resends (
    id              INTEGER PRIMARY KEY,
    campaign_id     INTEGER NOT NULL REFERENCES campaigns (id),
    batch_seq       INTEGER NOT NULL,
    from_state      TEXT    NOT NULL,
    requested_by    TEXT    NOT NULL,
    requested_at_ms INTEGER NOT NULL
);
