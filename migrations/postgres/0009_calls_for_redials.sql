-- The redial walk reads a campaign's calls in order of their orders from
-- this index alone: it holds how each call ended, too.
DROP INDEX calls_by_order;
CREATE INDEX calls_by_order ON calls (campaign_id, order_row)
    INCLUDE (answered, call_seconds, matched_by, start_ms, received_at_ms, hangup_reason, intent, call_id,
             end_ms, hangup_code, call_status);
