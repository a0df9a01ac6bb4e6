-- What `campaigns` lists: the job file of the campaign's last run or
-- ingest, and when it started.
ALTER TABLE campaigns ADD COLUMN job_path TEXT;
ALTER TABLE campaigns ADD COLUMN last_run_at_ms BIGINT;
