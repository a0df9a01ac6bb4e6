-- One run per campaign at a time: the run holding a campaign's lease, and
-- its last sign of life.
CREATE TABLE leases (
    campaign_id     INTEGER PRIMARY KEY REFERENCES campaigns (id),
    -- A token unique to one run: host, pid and a random part.
    owner           TEXT    NOT NULL,
    host            TEXT    NOT NULL,
    pid             INTEGER NOT NULL,
    acquired_at_ms  INTEGER NOT NULL,
    heartbeat_ms    INTEGER NOT NULL
);
