-- What keeps a second call from happening when runs overlap or a ledger is
-- copied.

-- A holder's heartbeat counter: a run that wants the campaign watches it
-- on its own clock, instead of comparing wall clocks of two processes.
ALTER TABLE leases ADD COLUMN beats INTEGER NOT NULL DEFAULT 0;

-- An uncertain batch taken from a run that may still live cannot be
-- re-sent by an operator before this time: until then, a request of the
-- old run held up on its way could still be accepted by the vendor.
ALTER TABLE batches ADD COLUMN resend_after_ms INTEGER NOT NULL DEFAULT 0;

-- Batches up to this sequence number hold only planned orders: dispatch
-- takes no batch beyond it, so a batch's orders are fixed when it is
-- planned.
ALTER TABLE campaigns ADD COLUMN batches_planned_through INTEGER NOT NULL DEFAULT 0;
UPDATE campaigns SET batches_planned_through = COALESCE((SELECT MAX(seq) FROM batches WHERE batches.campaign_id = campaigns.id), 0);

-- A random salt made with the ledger, mixed into derived order ids: stable
-- across re-reads in this ledger, different in any other. A ledger that
-- already holds campaigns keeps the ids it derived (an empty salt).
CREATE TABLE ledger_salt (
    only    INTEGER PRIMARY KEY CHECK (only = 1),
    salt    TEXT    NOT NULL
);
INSERT INTO ledger_salt (only, salt)
    SELECT 1, CASE WHEN EXISTS (SELECT 1 FROM campaigns) THEN '' ELSE lower(hex(randomblob(16))) END;
