-- Calls the vendor reports (webhook or call records), one row per callId:
-- the later report of a call replaces the earlier. `campaign_id` and
-- `matched_order_id` name the order the call was matched to (by orderId,
-- else by the caller's number); both are NULL for a call of an order this
-- ledger does not know, which is kept all the same.
CREATE TABLE calls (
    call_id         TEXT    PRIMARY KEY,
    order_id        TEXT,
    campaign_id     BIGINT,
    matched_order_id TEXT,
    task_id         TEXT,
    caller          TEXT,
    callee          TEXT,
    answered        BOOLEAN NOT NULL,
    start_ms        BIGINT,
    answer_ms       BIGINT,
    end_ms          BIGINT,
    ring_ms         BIGINT,
    ring_seconds    BIGINT,
    call_seconds    BIGINT,
    hangup_by       BIGINT,
    hangup_code     TEXT,
    hangup_reason   TEXT,
    call_status     TEXT,
    intent          TEXT,
    record_url      TEXT,
    price           DOUBLE PRECISION,
    raw             TEXT    NOT NULL,
    -- 'webhook' or 'sync', and when it was last stored.
    source          TEXT    NOT NULL,
    received_at_ms  BIGINT  NOT NULL
);

CREATE INDEX calls_by_order ON calls (campaign_id, matched_order_id);

-- Up to when `sync` has read the vendor's call records (Unix ms).
ALTER TABLE campaigns ADD COLUMN calls_synced_ms BIGINT;
