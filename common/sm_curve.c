/* sm_curve: CURVE keys, socket security options and the peer allow-list (sm_curve.h). */
#include "sm_curve.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <zmq.h>

sm_code sm_curve_keygen(char pub[SM_CURVE_Z85], char sec[SM_CURVE_Z85], sm_err *err)
{
    if (!zmq_has("curve"))
        return sm_err_set(err, SM_EUNSUPPORTED, "this libzmq was built without CURVE");
    if (zmq_curve_keypair(pub, sec) != 0)
        return sm_err_set(err, SM_EINTERNAL, "zmq_curve_keypair: %s", zmq_strerror(errno));
    return SM_OK;
}

static sm_code write_file(const char *path, const char *text, int mode, bool exclusive, sm_err *err)
{
    int fd = open(path, O_WRONLY | O_CREAT | (exclusive ? O_EXCL : O_TRUNC), mode);
    if (fd < 0)
        return sm_err_set(err, SM_EIO, "cannot create %s: %s", path, strerror(errno));
    size_t n = strlen(text);
    ssize_t w = write(fd, text, n);
    if (w != (ssize_t)n || fsync(fd) != 0) {
        close(fd);
        return sm_err_set(err, SM_EIO, "cannot write %s: %s", path, strerror(errno));
    }
    close(fd);
    return SM_OK;
}

sm_code sm_curve_write_pair(const char *base, char pub[SM_CURVE_Z85], sm_err *err)
{
    char sec[SM_CURVE_Z85];
    sm_code rc = sm_curve_keygen(pub, sec, err);
    if (rc)
        return rc;
    char path[4096], text[256];
    snprintf(path, sizeof path, "%s.secret", base);
    snprintf(text, sizeof text, "# stepmark CURVE secret key: keep private\n%s\n", sec);
    rc = write_file(path, text, 0600, true, err);
    memset(sec, 0, sizeof sec);
    memset(text, 0, sizeof text);
    if (rc)
        return rc;
    snprintf(path, sizeof path, "%s.public", base);
    snprintf(text, sizeof text, "# stepmark CURVE public key\n%s\n", pub);
    return write_file(path, text, 0644, false, err);
}

static bool z85_key_ok(const char *s, size_t n)
{
    if (n != 40)
        return false;
    uint8_t bin[32];
    char tmp[SM_CURVE_Z85];
    memcpy(tmp, s, 40);
    tmp[40] = '\0';
    return zmq_z85_decode(bin, tmp) != NULL;
}

/* Reads the first z85 key of the open key file fp (which it closes). */
static sm_code read_key_fp(FILE *fp, const char *path, char out[SM_CURVE_Z85], sm_err *err)
{
    char line[512];
    sm_code rc = sm_err_set(err, SM_EFORMAT, "%s: no z85 key found", path);
    while (fgets(line, sizeof line, fp)) {
        char *s = line;
        while (*s == ' ' || *s == '\t')
            s++;
        if (*s == '#' || *s == '\n' || *s == '\0')
            continue;
        size_t n = strcspn(s, " \t\r\n");
        if (!z85_key_ok(s, n)) {
            rc = sm_err_set(err, SM_EFORMAT, "%s: not a 40-character z85 key", path);
            break;
        }
        memcpy(out, s, 40);
        out[40] = '\0';
        rc = SM_OK;
        break;
    }
    memset(line, 0, sizeof line);
    fclose(fp);
    return rc;
}

sm_code sm_curve_read_key(const char *path, char out[SM_CURVE_Z85], sm_err *err)
{
    FILE *fp = fopen(path, "r");
    if (!fp)
        return sm_err_set(err, SM_EIO, "cannot open key file %s: %s", path, strerror(errno));
    return read_key_fp(fp, path, out, err);
}

/* Refuses a secret key file that is not a regular file, is owned by another user (root
 * excepted), or that group or others may read or write, as ssh does for private keys. */
static sm_code check_secret_mode(int fd, const char *path, sm_err *err)
{
    struct stat st;
    if (fstat(fd, &st) != 0)
        return sm_err_set(err, SM_EIO, "cannot stat secret key file %s: %s", path, strerror(errno));
    if (!S_ISREG(st.st_mode))
        return sm_err_set(err, SM_ECONFIG, "secret key file %s is not a regular file", path);
    if (st.st_uid != geteuid() && st.st_uid != 0)
        return sm_err_set(err, SM_ECONFIG,
                          "secret key file %s is owned by uid %u, not by this user (uid %u) or "
                          "root: chown it to the user that runs this program",
                          path, (unsigned)st.st_uid, (unsigned)geteuid());
    if (st.st_mode & (S_IRWXG | S_IRWXO))
        return sm_err_set(err, SM_ECONFIG,
                          "secret key file %s is accessible by group or others (mode %04o): "
                          "run chmod 600 %s",
                          path, (unsigned)(st.st_mode & 07777), path);
    return SM_OK;
}

sm_code sm_curve_read_secret(const char *path, char out[SM_CURVE_Z85], sm_err *err)
{
    int fd = open(path ? path : "", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return sm_err_set(err, SM_EIO, "cannot open secret key file %s: %s", path ? path : "",
                          strerror(errno));
    sm_code rc = check_secret_mode(fd, path, err);
    FILE *fp = rc ? NULL : fdopen(fd, "r");
    if (!rc && !fp)
        rc = sm_err_set(err, SM_EIO, "cannot read secret key file %s: %s", path, strerror(errno));
    if (rc) {
        close(fd);
        return rc;
    }
    return read_key_fp(fp, path, out, err);
}

sm_code sm_curve_key_arg(const char *value, char out[SM_CURVE_Z85], sm_err *err)
{
    if (!value || !*value)
        return sm_err_set(err, SM_EINVAL, "no CURVE key given");
    /* a file by that name wins: a 40-character path can also be valid z85 */
    struct stat st;
    if (stat(value, &st) != 0 && z85_key_ok(value, strlen(value))) {
        memcpy(out, value, 41);
        return SM_OK;
    }
    return sm_curve_read_key(value, out, err);
}

sm_code sm_curve_public_of(const char *secret, char pub[SM_CURVE_Z85], sm_err *err)
{
    if (zmq_curve_public(pub, secret) != 0)
        return sm_err_set(err, SM_EINVAL, "invalid CURVE secret key");
    return SM_OK;
}

sm_code sm_curve_server(void *sock, const char *secret, sm_err *err)
{
    int one = 1;
    if (zmq_setsockopt(sock, ZMQ_CURVE_SERVER, &one, sizeof one) != 0 ||
        zmq_setsockopt(sock, ZMQ_CURVE_SECRETKEY, secret, 40) != 0 ||
        zmq_setsockopt(sock, ZMQ_ZAP_DOMAIN, "stepmark", 8) != 0)
        return sm_err_set(err, SM_EINTERNAL, "cannot enable CURVE: %s", zmq_strerror(errno));
    return SM_OK;
}

sm_code sm_curve_client(void *sock, const char *server_public, const char *secret, sm_err *err)
{
    char pub[SM_CURVE_Z85];
    sm_code rc = sm_curve_public_of(secret, pub, err);
    if (rc)
        return rc;
    if (zmq_setsockopt(sock, ZMQ_CURVE_SERVERKEY, server_public, 40) != 0 ||
        zmq_setsockopt(sock, ZMQ_CURVE_PUBLICKEY, pub, 40) != 0 ||
        zmq_setsockopt(sock, ZMQ_CURVE_SECRETKEY, secret, 40) != 0)
        return sm_err_set(err, SM_EINVAL, "cannot set CURVE keys: %s", zmq_strerror(errno));
    return SM_OK;
}

bool sm_endpoint_is_local(const char *ep)
{
    if (!strncmp(ep, "ipc://", 6) || !strncmp(ep, "inproc://", 9))
        return true;
    if (strncmp(ep, "tcp://", 6) != 0)
        return false;
    const char *h = ep + 6;
    /* a "source;" prefix is not used by the broker's endpoints; treat it as remote */
    if (strchr(h, ';'))
        return false;
    if (!strncmp(h, "127.", 4) || !strncmp(h, "localhost:", 10) || !strncmp(h, "[::1]:", 6))
        return true;
    return false;
}

typedef struct sm_keyentry {
    uint8_t key[32];
    char name[64];
} sm_keyentry;

struct sm_keyset {
    int n, cap;
    sm_keyentry *keys;
};

sm_code sm_keyset_load(const char *path, sm_keyset **out, sm_err *err)
{
    *out = NULL;
    FILE *fp = fopen(path, "r");
    if (!fp)
        return sm_err_set(err, SM_EIO, "cannot open allow-list %s: %s", path, strerror(errno));
    sm_keyset *ks = calloc(1, sizeof *ks);
    if (!ks) {
        fclose(fp);
        return sm_err_set(err, SM_ENOMEM, "out of memory");
    }
    char line[512];
    int lineno = 0;
    sm_code rc = SM_OK;
    while (fgets(line, sizeof line, fp)) {
        lineno++;
        char *s = line;
        while (*s == ' ' || *s == '\t')
            s++;
        if (*s == '#' || *s == '\n' || *s == '\r' || *s == '\0')
            continue;
        size_t n = strcspn(s, " \t\r\n");
        char z[SM_CURVE_Z85];
        if (n != 40) {
            rc = sm_err_set(err, SM_EFORMAT, "%s:%d: not a 40-character z85 key", path, lineno);
            break;
        }
        memcpy(z, s, 40);
        z[40] = '\0';
        if (ks->n == ks->cap) {
            int cap = ks->cap ? ks->cap * 2 : 16;
            sm_keyentry *k = realloc(ks->keys, (size_t)cap * sizeof *k);
            if (!k) {
                rc = sm_err_set(err, SM_ENOMEM, "out of memory");
                break;
            }
            ks->keys = k;
            ks->cap = cap;
        }
        sm_keyentry *e = &ks->keys[ks->n];
        if (!zmq_z85_decode(e->key, z)) {
            rc = sm_err_set(err, SM_EFORMAT, "%s:%d: invalid z85 key", path, lineno);
            break;
        }
        char *name = s + n;
        while (*name == ' ' || *name == '\t')
            name++;
        size_t nl = strcspn(name, "\r\n");
        if (nl == 0) {
            snprintf(e->name, sizeof e->name, "%.40s", z);
        } else {
            if (nl >= sizeof e->name)
                nl = sizeof e->name - 1;
            memcpy(e->name, name, nl);
            e->name[nl] = '\0';
        }
        ks->n++;
    }
    fclose(fp);
    if (rc) {
        sm_keyset_free(&ks);
        return rc;
    }
    *out = ks;
    return SM_OK;
}

bool sm_keyset_find(const sm_keyset *ks, const uint8_t key[32], const char **name)
{
    for (int i = 0; ks && i < ks->n; i++)
        if (memcmp(ks->keys[i].key, key, 32) == 0) {
            if (name)
                *name = ks->keys[i].name;
            return true;
        }
    return false;
}

const char *sm_keyset_common(const sm_keyset *a, const sm_keyset *b)
{
    for (int i = 0; a && i < a->n; i++)
        if (sm_keyset_find(b, a->keys[i].key, NULL))
            return a->keys[i].name;
    return NULL;
}

int sm_keyset_count(const sm_keyset *ks)
{
    return ks ? ks->n : 0;
}

void sm_keyset_free(sm_keyset **ks)
{
    if (!ks || !*ks)
        return;
    free((*ks)->keys);
    free(*ks);
    *ks = NULL;
}
