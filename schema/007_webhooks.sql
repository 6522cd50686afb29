-- 007_webhooks: outgoing webhooks (docs/webhooks.md).
--  * webhook: one receiver URL of a course and its signing secret. The secret is stored as it
--    is because every delivery is signed with it; protect the database (and its backups) like
--    any other secret store. `stepmark webhook add` prints it once.
--  * webhook_cursor: where each webhook stands in event_outbox, (cursor_xid, cursor_id): the
--    last event it acknowledged with a 2xx. Deliveries go strictly in outbox (xid, id) order,
--    one at a time; a failing event blocks the ones behind it (head-of-line) until it succeeds,
--    with exponential backoff (attempts, next_attempt_at). All of it survives restarts.
--  * webhook_delivery: the delivery log, one row per HTTP attempt (status code or error,
--    duration), shown by `stepmark webhook log`.
-- Two brokers on one database never deliver to the same webhook at once: the delivering
-- broker holds a session advisory lock on the webhook (no transaction stays open meanwhile).

CREATE TABLE webhook (
    id          bigserial PRIMARY KEY,
    course_id   bigint NOT NULL REFERENCES course(id) ON DELETE CASCADE,
    url         text NOT NULL CHECK (length(url) BETWEEN 1 AND 2000),
    secret      text NOT NULL CHECK (length(secret) BETWEEN 32 AND 200),
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX webhook_course_idx ON webhook (course_id);

-- A new webhook starts at the oldest transaction still running when it was added: it gets the
-- events of every transaction that commits after that, and none of the older history.
CREATE TABLE webhook_cursor (
    webhook_id       bigint PRIMARY KEY REFERENCES webhook(id) ON DELETE CASCADE,
    cursor_xid       xid8 NOT NULL DEFAULT pg_snapshot_xmin(pg_current_snapshot()),
    cursor_id        bigint NOT NULL DEFAULT 0,
    attempts         integer NOT NULL DEFAULT 0 CHECK (attempts >= 0), -- failures of the head event
    next_attempt_at  timestamptz NOT NULL DEFAULT now(),
    last_error       text,
    delivered        bigint NOT NULL DEFAULT 0,  -- events acknowledged so far
    last_success_at  timestamptz
);
CREATE INDEX webhook_cursor_due_idx ON webhook_cursor (next_attempt_at);

CREATE TABLE webhook_delivery (
    id           bigserial PRIMARY KEY,
    webhook_id   bigint NOT NULL REFERENCES webhook(id) ON DELETE CASCADE,
    event_id     bigint NOT NULL,   -- event_outbox.id (the event may since have been deleted)
    event        text NOT NULL,     -- its kind
    delivery     text NOT NULL,     -- the Stepmark-Delivery header: the same for every attempt
    attempt      integer NOT NULL CHECK (attempt >= 1),
    status_code  integer,           -- HTTP status, NULL when no response came back
    error        text,              -- NULL on success
    duration_ms  integer NOT NULL CHECK (duration_ms >= 0),
    broker       text NOT NULL DEFAULT '',  -- which stepmarkd made the attempt
    at           timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX webhook_delivery_hook_idx ON webhook_delivery (webhook_id, id);
CREATE INDEX webhook_delivery_at_idx ON webhook_delivery (at);
