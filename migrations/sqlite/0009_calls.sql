-- Calls the vendor reports (webhook or call records), one row per callId:
-- the later report of a call replaces the earlier. `campaign_id` and
-- `matched_order_id` name the order the call was matched to (by orderId,
-- else by the caller's number); both are NULL for a call of an order this
-- ledger does not know, which is kept all the same.
CREATE TABLE calls (
    call_id         TEXT    PRIMARY KEY,
    order_id        TEXT,
    campaign_id     INTEGER,
    matched_order_id TEXT,
    task_id         TEXT,
    caller          TEXT,
    callee          TEXT,
    answered        INTEGER NOT NULL CHECK (answered IN (0, 1)),
    start_ms        INTEGER,
    answer_ms       INTEGER,
    end_ms          INTEGER,
    ring_ms         INTEGER,
    ring_seconds    INTEGER,
    call_seconds    INTEGER,
    hangup_by       INTEGER,
    hangup_code     TEXT,
    hangup_reason   TEXT,
    call_status     TEXT,
    intent          TEXT,
    record_url      TEXT,
    price           REAL,
    raw             TEXT    NOT NULL,
    -- 'webhook' or 'sync', and when it was last stored.
    source          TEXT    NOT NULL,
    received_at_ms  INTEGER NOT NULL
) WITHOUT ROWID;

CREATE INDEX calls_by_order ON calls (campaign_id, matched_order_id);

-- Up to when `sync` has read the vendor's call records (Unix ms).
ALTER TABLE campaigns ADD COLUMN calls_synced_ms INTEGER;
