-- 009_lti: LTI 1.3 (docs/lti.md): the platforms (LMSs) registered with `stepmark lti platform
-- add`, the tool's own RSA keys, OIDC login states and used nonces, the users, contexts and
-- resource links seen in launches and how they map to stepmark's teachers, courses and
-- assignments.
--  * lti_key holds the tool's private keys in PEM. Only stepmark's programs read it (the
--    database role of stepmarkd and the CLI); it is never printed. A rotated-out key keeps
--    retired_at and stays in the public JWKS for lti.key_grace_days.
--  * lti_state: one row per OIDC login initiation; the browser holds a random cookie whose
--    SHA-256 is browser_hash, so the launch must come back to the same browser. Single use.
--  * lti_nonce: the nonces of accepted id_tokens, kept until the token expires (no replay).

CREATE TABLE lti_platform (
    id          bigserial PRIMARY KEY,
    issuer      text NOT NULL CHECK (length(issuer) BETWEEN 1 AND 500),
    client_id   text NOT NULL CHECK (length(client_id) BETWEEN 1 AND 500),
    auth_url    text NOT NULL CHECK (auth_url ~ '^https?://'),
    token_url   text NOT NULL CHECK (token_url ~ '^https?://'),
    jwks_url    text NOT NULL CHECK (jwks_url ~ '^https?://'),
    created_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (issuer, client_id)
);

CREATE TABLE lti_deployment (
    platform_id    bigint NOT NULL REFERENCES lti_platform(id) ON DELETE CASCADE,
    deployment_id  text NOT NULL CHECK (length(deployment_id) BETWEEN 1 AND 500),
    PRIMARY KEY (platform_id, deployment_id)
);

CREATE TABLE lti_key (
    kid          text PRIMARY KEY,
    private_pem  text NOT NULL,
    public_jwk   jsonb NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    retired_at   timestamptz          -- NULL: the current signing key (at most one)
);
CREATE UNIQUE INDEX lti_key_current_idx ON lti_key ((true)) WHERE retired_at IS NULL;

CREATE TABLE lti_state (
    state_hash    text PRIMARY KEY,    -- SHA-256 of the state sent to the platform
    browser_hash  text NOT NULL,       -- SHA-256 of the browser's lti_state cookie
    nonce         text NOT NULL,
    platform_id   bigint NOT NULL REFERENCES lti_platform(id) ON DELETE CASCADE,
    expires_at    timestamptz NOT NULL
);
CREATE INDEX lti_state_expires_idx ON lti_state (expires_at);

CREATE TABLE lti_nonce (
    platform_id  bigint NOT NULL REFERENCES lti_platform(id) ON DELETE CASCADE,
    nonce        text NOT NULL,
    expires_at   timestamptz NOT NULL,
    PRIMARY KEY (platform_id, nonce)
);
CREATE INDEX lti_nonce_expires_idx ON lti_nonce (expires_at);

-- A platform user who launched as an Instructor or TA is a stepmark teacher (with a random
-- sign-in token nobody knows: such a teacher only signs in through launches).
CREATE TABLE lti_user (
    platform_id  bigint NOT NULL REFERENCES lti_platform(id) ON DELETE CASCADE,
    sub          text NOT NULL CHECK (length(sub) BETWEEN 1 AND 255),
    teacher_id   bigint REFERENCES teacher(id) ON DELETE SET NULL,
    name         text NOT NULL DEFAULT '',
    email        text NOT NULL DEFAULT '',
    last_launch  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (platform_id, sub)
);

CREATE TABLE lti_context (
    platform_id  bigint NOT NULL REFERENCES lti_platform(id) ON DELETE CASCADE,
    context_id   text NOT NULL CHECK (length(context_id) BETWEEN 1 AND 255),
    title        text NOT NULL DEFAULT '',
    course_id    bigint REFERENCES course(id) ON DELETE SET NULL,  -- NULL: not mapped yet
    PRIMARY KEY (platform_id, context_id)
);

CREATE TABLE lti_resource_link (
    platform_id       bigint NOT NULL REFERENCES lti_platform(id) ON DELETE CASCADE,
    resource_link_id  text NOT NULL CHECK (length(resource_link_id) BETWEEN 1 AND 255),
    context_id        text NOT NULL,
    title             text NOT NULL DEFAULT '',
    assignment_id     bigint REFERENCES assignment(id) ON DELETE SET NULL,
    chosen_at         timestamptz,  -- an instructor chose (assignment_id NULL: the course page)
    PRIMARY KEY (platform_id, resource_link_id)
);

-- A validated launch waiting for the instructor's choice (the mapping page, or the deep
-- linking picker); its id is random, and only the teacher it names may use it, once.
CREATE TABLE lti_launch (
    id_hash       text PRIMARY KEY,
    platform_id   bigint NOT NULL REFERENCES lti_platform(id) ON DELETE CASCADE,
    teacher_id    bigint NOT NULL REFERENCES teacher(id) ON DELETE CASCADE,
    kind          text NOT NULL CHECK (kind IN ('map', 'deep_link')),
    claims        jsonb NOT NULL,  -- context, resource link, deep linking settings, deployment
    expires_at    timestamptz NOT NULL
);
