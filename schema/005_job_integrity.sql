-- 005_job_integrity: what the broker needs to judge a lost lease. leased_at bounds a job's
-- duration (broker.max_job_ms) however often its lease is extended; progressed_at tells
-- whether the worker that held it ever reported PROGRESS; unstarted_losses counts the leases
-- lost before any progress, which do not count as attempts (docs/security.md).
ALTER TABLE job
    ADD COLUMN leased_at        timestamptz,
    ADD COLUMN progressed_at    timestamptz,
    ADD COLUMN unstarted_losses integer NOT NULL DEFAULT 0 CHECK (unstarted_losses >= 0);
