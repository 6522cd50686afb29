-- 002_broker: what the broker needs beyond 001: finding the jobs leased to one worker
-- (heartbeat lease extension, release of a lost worker's jobs) without scanning the queue.
CREATE INDEX job_lease_owner_idx ON job (lease_owner) WHERE state = 'leased';
