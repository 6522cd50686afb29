-- 004_teacher_access: teacher tokens that can be rotated, revoked and given an expiry; sessions
-- bound to the token generation they were opened with; the last use of each teacher's access.
-- A teacher has at most one valid token, stored only as its SHA-256 (teacher.token_hash).
-- `stepmark teacher rotate` replaces it and `teacher revoke` removes it; both increase
-- token_epoch, and a session counts only while its token_epoch equals the teacher's, so every
-- session opened with an earlier token ends at once, even one created during the change.

ALTER TABLE teacher ALTER COLUMN token_hash DROP NOT NULL;  -- NULL: revoked, no valid token
ALTER TABLE teacher
    ADD COLUMN token_created_at timestamptz,
    ADD COLUMN token_expires_at timestamptz,                -- NULL: the token does not expire
    ADD COLUMN token_epoch      integer NOT NULL DEFAULT 1, -- increased by rotate and revoke
    ADD COLUMN revoked_at       timestamptz,                -- set by revoke, cleared by rotate
    ADD COLUMN last_used_at     timestamptz;                -- sign-in or signed-in request
UPDATE teacher SET token_created_at = created_at;
ALTER TABLE teacher
    ALTER COLUMN token_created_at SET NOT NULL,
    ALTER COLUMN token_created_at SET DEFAULT now(),
    ADD CONSTRAINT teacher_revoked_has_no_token CHECK ((token_hash IS NULL) = (revoked_at IS NOT NULL));

-- Sessions open before this migration stay valid (epoch 1); new ones must name their epoch.
ALTER TABLE teacher_session ADD COLUMN token_epoch integer NOT NULL DEFAULT 1;
ALTER TABLE teacher_session ALTER COLUMN token_epoch DROP DEFAULT;
