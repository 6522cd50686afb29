"""CURVE keys as `stepmark keygen --out NAME` writes them: NAME.secret (mode 0600) and
NAME.public, each holding one 40-character Z85 key on a line of its own, after `#` comments."""
import os
import stat

import zmq
from zmq.utils import z85


def read_key(path):
    """The first Z85 key in a key file. Raises ValueError when there is none."""
    with open(path, "r", encoding="ascii", errors="replace") as f:
        for line in f:
            s = line.strip()
            if not s or s.startswith("#"):
                continue
            key = s.split()[0]
            if len(key) == 40 and _z85_ok(key):
                return key.encode("ascii")
            break
    raise ValueError(f"{path}: no Z85 key found")


def _z85_ok(key):
    try:
        return len(z85.decode(key)) == 32
    except (ValueError, KeyError, TypeError):
        return False


def key_arg(value):
    """A key given either as the 40-character Z85 text or as the path of a key file."""
    if isinstance(value, bytes):
        value = value.decode("ascii")
    if len(value) == 40 and _z85_ok(value) and not os.path.exists(value):
        return value.encode("ascii")
    return read_key(value)


def read_secret(path):
    """A secret key file, refused (like the broker and the CLI do) when group or others may
    read or write it or another user owns it."""
    st = os.stat(path)
    if st.st_mode & (stat.S_IRWXG | stat.S_IRWXO) or st.st_uid != os.getuid():
        raise PermissionError(f"{path}: secret key file must be private to its owner "
                              f"(chmod 600 {path})")
    return read_key(path)


def public_of(secret):
    """The public key of a Z85 secret key."""
    return zmq.curve_public(secret)
