-- The contact file the checkpoint belongs to, as the job names it: another
-- file is read from its start, while the same file changed in the part
-- already read is refused.
ALTER TABLE campaigns ADD COLUMN source_path TEXT;
