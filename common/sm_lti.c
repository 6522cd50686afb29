/* sm_lti: LTI platforms and the tool's keys in PostgreSQL (see sm_lti.h). */
#include "sm_lti.h"

#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sm_db.h"

static sm_code rollback(PGconn *db, sm_code rc)
{
    sm_db_exec(db, "ROLLBACK", NULL);
    return rc;
}

sm_code sm_lti_platform_add(PGconn *db, const sm_lti_platform_spec *spec, int64_t *id, sm_err *err)
{
    if (spec->n_deployments < 1)
        return sm_err_set(err, SM_EINVAL, "at least one deployment id is needed");
    sm_code rc = sm_db_exec(db, "BEGIN", err);
    if (rc != SM_OK)
        return rc;
    const char *p[] = {spec->issuer, spec->client_id, spec->auth_url, spec->token_url,
                       spec->jwks_url};
    PGresult *r = NULL;
    rc = sm_db_query(db,
                     "INSERT INTO lti_platform (issuer, client_id, auth_url, token_url, jwks_url) "
                     "VALUES ($1, $2, $3, $4, $5) ON CONFLICT (issuer, client_id) DO NOTHING "
                     "RETURNING id",
                     5, p, &r, err);
    if (rc != SM_OK)
        return rollback(db, sm_err_prefix(err, "cannot add the platform"));
    if (PQntuples(r) != 1) {
        PQclear(r);
        return rollback(
            db, sm_err_set(err, SM_ESTATE, "a platform with this issuer and client id exists"));
    }
    char sid[24];
    snprintf(sid, sizeof sid, "%s", PQgetvalue(r, 0, 0));
    PQclear(r);
    for (int i = 0; i < spec->n_deployments && rc == SM_OK; i++) {
        const char *q[] = {sid, spec->deployments[i]};
        rc = sm_db_query(db,
                         "INSERT INTO lti_deployment (platform_id, deployment_id) VALUES "
                         "($1::bigint, $2) ON CONFLICT DO NOTHING",
                         2, q, NULL, err);
    }
    if (rc == SM_OK)
        rc = sm_db_exec(db, "COMMIT", err);
    if (rc != SM_OK)
        return rollback(db, rc);
    *id = strtoll(sid, NULL, 10);
    return SM_OK;
}

sm_code sm_lti_platform_list(PGconn *db, json_t **out, sm_err *err)
{
    PGresult *r = NULL;
    sm_code rc = sm_db_query(
        db,
        "SELECT COALESCE(json_agg(json_build_object('id', p.id, 'issuer', p.issuer, "
        "'client_id', p.client_id, 'auth_url', p.auth_url, 'token_url', p.token_url, "
        "'jwks_url', p.jwks_url, 'deployments', (SELECT COALESCE(json_agg(d.deployment_id "
        "ORDER BY d.deployment_id), '[]') FROM lti_deployment d WHERE d.platform_id = p.id)) "
        "ORDER BY p.id), '[]')::text FROM lti_platform p",
        0, NULL, &r, err);
    if (rc != SM_OK)
        return rc;
    *out = json_loads(PQgetvalue(r, 0, 0), 0, NULL);
    PQclear(r);
    return *out ? SM_OK : sm_err_set(err, SM_EINTERNAL, "cannot read the platform list");
}

sm_code sm_lti_platform_remove(PGconn *db, int64_t id, sm_err *err)
{
    char sid[24];
    snprintf(sid, sizeof sid, "%lld", (long long)id);
    const char *p[] = {sid};
    PGresult *r = NULL;
    sm_code rc = sm_db_query(db, "DELETE FROM lti_platform WHERE id = $1::bigint RETURNING id", 1,
                             p, &r, err);
    if (rc != SM_OK)
        return rc;
    int n = PQntuples(r);
    PQclear(r);
    return n == 1 ? SM_OK : sm_err_set(err, SM_ENOTFOUND, "no platform with id %s", sid);
}

/* Stores a new key pair as the current key (when retire, the current one is retired first);
 * with !retire and a current key already there, nothing changes. */
static sm_code key_insert(PGconn *db, bool retire, char kid[SM_LTI_KID_MAX], sm_err *err)
{
    sm_lti_keypair kp;
    sm_code rc = sm_lti_keygen(&kp, err);
    if (rc != SM_OK)
        return rc;
    char *jwk = json_dumps(kp.public_jwk, JSON_COMPACT);
    const char *p[] = {kp.kid, kp.private_pem, jwk};
    rc = jwk ? sm_db_exec(db, "BEGIN", err) : sm_err_set(err, SM_ENOMEM, "out of memory");
    if (rc == SM_OK && retire)
        rc = sm_db_exec(db, "UPDATE lti_key SET retired_at = now() WHERE retired_at IS NULL", err);
    if (rc == SM_OK)
        rc = sm_db_query(db,
                         "INSERT INTO lti_key (kid, private_pem, public_jwk) VALUES "
                         "($1, $2, $3::jsonb) ON CONFLICT ((true)) WHERE retired_at IS NULL "
                         "DO NOTHING",
                         3, p, NULL, err);
    if (rc == SM_OK)
        rc = sm_db_exec(db, "COMMIT", err);
    else if (jwk)
        rollback(db, rc);
    if (rc == SM_OK && kid)
        snprintf(kid, SM_LTI_KID_MAX, "%s", kp.kid);
    free(jwk);
    sm_lti_keypair_clear(&kp);
    return rc;
}

sm_code sm_lti_signer_get(PGconn *db, sm_lti_signer *out, sm_err *err)
{
    memset(out, 0, sizeof *out);
    for (int attempt = 0; attempt < 2; attempt++) {
        PGresult *r = NULL;
        sm_code rc = sm_db_query(
            db, "SELECT kid, private_pem FROM lti_key WHERE retired_at IS NULL", 0, NULL, &r, err);
        if (rc != SM_OK)
            return rc;
        if (PQntuples(r) == 1) {
            snprintf(out->kid, sizeof out->kid, "%s", PQgetvalue(r, 0, 0));
            out->private_pem = strdup(PQgetvalue(r, 0, 1));
            OPENSSL_cleanse(PQgetvalue(r, 0, 1), strlen(PQgetvalue(r, 0, 1)));
            PQclear(r);
            return out->private_pem ? SM_OK : sm_err_set(err, SM_ENOMEM, "out of memory");
        }
        PQclear(r);
        rc = key_insert(db, false, NULL, err);
        if (rc != SM_OK)
            return rc;
    }
    return sm_err_set(err, SM_EINTERNAL, "no current LTI key");
}

void sm_lti_signer_clear(sm_lti_signer *s)
{
    if (s->private_pem) {
        OPENSSL_cleanse(s->private_pem, strlen(s->private_pem));
        free(s->private_pem);
    }
    memset(s, 0, sizeof *s);
}

sm_code sm_lti_key_rotate(PGconn *db, char kid[SM_LTI_KID_MAX], sm_err *err)
{
    return key_insert(db, true, kid, err);
}

sm_code sm_lti_jwks(PGconn *db, int64_t grace_days, json_t **out, sm_err *err)
{
    sm_lti_signer s;
    sm_code rc = sm_lti_signer_get(db, &s, err); /* the first key is made here */
    sm_lti_signer_clear(&s);
    if (rc != SM_OK)
        return rc;
    char days[24];
    snprintf(days, sizeof days, "%lld", (long long)grace_days);
    const char *p[] = {days};
    PGresult *r = NULL;
    rc = sm_db_query(db,
                     "SELECT json_build_object('keys', COALESCE(json_agg(public_jwk ORDER BY "
                     "created_at DESC), '[]'))::text FROM lti_key WHERE retired_at IS NULL OR "
                     "retired_at > now() - make_interval(days => $1::int)",
                     1, p, &r, err);
    if (rc != SM_OK)
        return rc;
    *out = json_loads(PQgetvalue(r, 0, 0), 0, NULL);
    PQclear(r);
    return *out ? SM_OK : sm_err_set(err, SM_EINTERNAL, "cannot build the JWKS");
}

void sm_lti_base_url(const char *public_url, bool tls, const char *address, int64_t port, char *out,
                     size_t n)
{
    if (public_url && public_url[0]) {
        snprintf(out, n, "%s", public_url);
    } else {
        bool v6 = strchr(address, ':') != NULL;
        snprintf(out, n, "%s://%s%s%s:%lld", tls ? "https" : "http", v6 ? "[" : "", address,
                 v6 ? "]" : "", (long long)port);
    }
    size_t len = strlen(out);
    while (len > 0 && out[len - 1] == '/')
        out[--len] = '\0';
}
