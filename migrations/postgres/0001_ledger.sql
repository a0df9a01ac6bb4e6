-- The ledger on PostgreSQL: the same tables as on SQLite (see
-- migrations/sqlite), in their final shape, plus what several runners on
-- one campaign need: a row per runner, batches bound to the runner sending
-- them, and the shared rate limit. Times are Unix milliseconds.

-- A random salt made with the ledger, mixed into derived order ids.
CREATE TABLE ledger_salt (
    only_row        INTEGER PRIMARY KEY CHECK (only_row = 1),
    salt            TEXT    NOT NULL
);
INSERT INTO ledger_salt (only_row, salt) VALUES (1, md5(random()::text || clock_timestamp()::text));

CREATE TABLE campaigns (
    id              BIGSERIAL PRIMARY KEY,
    name            TEXT    NOT NULL UNIQUE,
    created_at_ms   BIGINT  NOT NULL,
    -- Data rows of contact files that entered the ledger.
    rows_read       BIGINT  NOT NULL DEFAULT 0,
    -- Ingest checkpoint: the file as the job names it, the digest of what
    -- was read, and where its next record starts.
    source_path     TEXT,
    source_fingerprint TEXT,
    source_offset   BIGINT  NOT NULL DEFAULT 0,
    source_line     BIGINT  NOT NULL DEFAULT 0,
    -- Orders with an id above this are staged (read, not yet planned);
    -- batches above this sequence number are not yet planned.
    planned_through BIGINT  NOT NULL DEFAULT 0,
    batches_planned_through BIGINT NOT NULL DEFAULT 0,
    -- Orders set aside at ingest, counted as they are: `status` reads
    -- these instead of an index whose every entry may cost a visit to the
    -- table until it is vacuumed.
    invalid_orders  BIGINT  NOT NULL DEFAULT 0,
    duplicate_orders BIGINT NOT NULL DEFAULT 0
);

-- Every `nxcampaign run` working on a campaign, with its heartbeat: a
-- runner whose counter stops moving is presumed dead by the others.
CREATE TABLE runners (
    owner           TEXT    PRIMARY KEY,
    campaign_id     BIGINT  NOT NULL REFERENCES campaigns (id),
    host            TEXT    NOT NULL,
    pid             BIGINT  NOT NULL,
    acquired_at_ms  BIGINT  NOT NULL,
    heartbeat_ms    BIGINT  NOT NULL,
    beats           BIGINT  NOT NULL DEFAULT 0
);
CREATE INDEX runners_by_campaign ON runners (campaign_id);

-- The campaign's ingest lease: the one runner reading its contact file.
-- It goes with its runner.
CREATE TABLE leases (
    campaign_id     BIGINT  PRIMARY KEY REFERENCES campaigns (id),
    owner           TEXT    NOT NULL REFERENCES runners (owner) ON DELETE CASCADE
);

CREATE TABLE batches (
    campaign_id     BIGINT  NOT NULL REFERENCES campaigns (id),
    seq             BIGINT  NOT NULL,
    country         TEXT    NOT NULL,
    size            BIGINT  NOT NULL,
    state           TEXT    NOT NULL DEFAULT 'pending'
                    CHECK (state IN ('pending', 'sending', 'accepted', 'rejected', 'failed', 'uncertain')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    attempts_before_resend INTEGER NOT NULL DEFAULT 0,
    not_before_ms   BIGINT  NOT NULL DEFAULT 0,
    code            BIGINT,
    message         TEXT,
    req_id          TEXT,
    updated_at_ms   BIGINT  NOT NULL,
    resend_after_ms BIGINT  NOT NULL DEFAULT 0,
    -- The runner that marked it `sending` last: if that runner dies, its
    -- `sending` batches (and only those) become `uncertain`.
    runner          TEXT,
    PRIMARY KEY (campaign_id, seq)
);
CREATE INDEX batches_pending ON batches (campaign_id, seq) WHERE state = 'pending';
CREATE INDEX batches_sending ON batches (runner) WHERE state = 'sending';

-- One input row; a row set aside at ingest keeps that state for good. No
-- foreign key: only the runner holding the ingest lease writes orders, and
-- a per-row check would slow `COPY` down.
CREATE TABLE orders (
    id              BIGSERIAL PRIMARY KEY,
    campaign_id     BIGINT  NOT NULL,
    line            BIGINT  NOT NULL,
    order_id        TEXT    COLLATE "C",
    phone           TEXT    COLLATE "C" NOT NULL,
    country         TEXT,
    other           TEXT    NOT NULL DEFAULT '',
    batch_seq       BIGINT,
    set_aside       TEXT    CHECK (set_aside IN ('invalid', 'duplicate', 'suppressed')),
    reason          TEXT,
    -- True for a staged row that may repeat a key of an earlier row of its
    -- ingest (the reader's filter marks them; it never misses one): only
    -- these need a look at the others when they are planned.
    suspect         BOOLEAN,
    CHECK (batch_seq IS NULL OR set_aside IS NULL)
);
CREATE INDEX orders_by_batch ON orders (campaign_id, batch_seq) WHERE batch_seq IS NOT NULL;
CREATE INDEX orders_set_aside ON orders (campaign_id, set_aside) WHERE set_aside IS NOT NULL;

-- The keys every live order claims: no two live orders of a campaign
-- share a phone (kind 0) or an order id (kind 1). Keys are ASCII digits
-- and letters, compared byte by byte (`COLLATE "C"`): a locale's rules
-- would only slow every sort and lookup down.
CREATE TABLE order_keys (
    campaign_id     BIGINT  NOT NULL,
    kind            SMALLINT NOT NULL CHECK (kind IN (0, 1)),
    key             TEXT    COLLATE "C" NOT NULL,
    line            BIGINT  NOT NULL,
    PRIMARY KEY (campaign_id, kind, key)
);

CREATE TABLE attempts (
    campaign_id     BIGINT  NOT NULL,
    batch_seq       BIGINT  NOT NULL,
    number          INTEGER NOT NULL,
    started_at_ms   BIGINT  NOT NULL,
    duration_ms     BIGINT,
    http_status     INTEGER,
    code            BIGINT,
    message         TEXT,
    req_id          TEXT,
    decision        TEXT,
    PRIMARY KEY (campaign_id, batch_seq, number),
    FOREIGN KEY (campaign_id, batch_seq) REFERENCES batches (campaign_id, seq)
);

CREATE TABLE resends (
    id              BIGSERIAL PRIMARY KEY,
    campaign_id     BIGINT  NOT NULL REFERENCES campaigns (id),
    batch_seq       BIGINT  NOT NULL,
    from_state      TEXT    NOT NULL,
    requested_by    TEXT    NOT NULL,
    requested_at_ms BIGINT  NOT NULL
);

-- The shared request rate (GCRA): per vendor account or per campaign, the
-- theoretical arrival time of the next request, in microseconds of the
-- database server's clock, so that the runners' own clocks never matter.
-- Unlogged: a reservation needs no disk flush (which would delay the
-- request it reserves by a flush's time), and a bucket lost in a server
-- crash only starts afresh.
CREATE UNLOGGED TABLE rate_limits (
    key             TEXT    PRIMARY KEY,
    tat_us          BIGINT  NOT NULL,
    now_us          BIGINT  NOT NULL
);
