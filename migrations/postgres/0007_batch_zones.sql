-- The time zones a batch's numbers may be in (joined by '&'), so that its
-- calling window is the one common to all of them; empty for a batch of a
-- job without a schedule, or planned before numbers had zones (its
-- country's zone, as the job gives it).
ALTER TABLE batches ADD COLUMN zones TEXT NOT NULL DEFAULT '';
