#!/usr/bin/env python3
"""kquants: quantizes float matrices to the GGUF K-quant block formats Q4_K, Q5_K and Q6_K with
numpy, written from the format's description (ggml's block_q4_K / block_q5_K / block_q6_K, as
the gguf package's dequantization reads them), independently of the engine's C code. The
gguf package (0.10) can dequantize these types but not quantize to them. The quantizer is
simple (a sub-block's range from its min and max, no search), enough for test models."""
import numpy as np

QK = 256
TYPES = ("q4_k", "q5_k", "q6_k")
BLOCK_BYTES = {"q4_k": 144, "q5_k": 176, "q6_k": 210}


def _f16(x):
    return np.asarray(x, dtype=np.float32).astype(np.float16)


def _pack_scales(sc, m):
    """8 six-bit scales and mins (n, 8) to the 12 packed bytes (n, 12)."""
    s = np.zeros((sc.shape[0], 12), dtype=np.uint8)
    for j in range(4):
        s[:, j] = (sc[:, j] & 63) | ((sc[:, j + 4] >> 4) << 6)
        s[:, j + 4] = (m[:, j] & 63) | ((m[:, j + 4] >> 4) << 6)
        s[:, j + 8] = (sc[:, j + 4] & 15) | ((m[:, j + 4] & 15) << 4)
    return s


def _q45(x, bits):
    """x: (n, 256) f32 -> d, dmin (f16), sc, m (n, 8) and q (n, 256) in 0..2^bits-1."""
    levels = (1 << bits) - 1
    sub = x.reshape(-1, 8, 32)
    lo = np.minimum(sub.min(axis=2), 0.0)
    hi = sub.max(axis=2)
    scale = (hi - lo) / levels
    mins = -lo
    d = _f16(scale.max(axis=1) / 63)
    dmin = _f16(mins.max(axis=1) / 63)
    df, dmf = d.astype(np.float32)[:, None], dmin.astype(np.float32)[:, None]
    with np.errstate(divide="ignore", invalid="ignore"):
        sc = np.where(df > 0, np.rint(scale / df), 0)
        m = np.where(dmf > 0, np.rint(mins / dmf), 0)
    sc = np.clip(sc, 0, 63).astype(np.uint8)
    m = np.clip(m, 0, 63).astype(np.uint8)
    step = (df * sc)[:, :, None]
    off = (dmf * m)[:, :, None]
    with np.errstate(divide="ignore", invalid="ignore"):
        q = np.where(step > 0, np.rint((sub + off) / step), 0)
    q = np.clip(q, 0, levels).astype(np.uint8).reshape(-1, QK)
    return d, dmin, sc, m, q


def _quant_q4_k(x):
    d, dmin, sc, m, q = _q45(x, 4)
    q = q.reshape(-1, 4, 2, 32)
    qs = (q[:, :, 0, :] | (q[:, :, 1, :] << 4)).reshape(-1, 128)
    return np.concatenate([d.view(np.uint8).reshape(-1, 2), dmin.view(np.uint8).reshape(-1, 2),
                           _pack_scales(sc, m), qs], axis=1)


def _quant_q5_k(x):
    d, dmin, sc, m, q = _q45(x, 5)
    q8 = q.reshape(-1, 8, 32)  # sub-block i = 2c + h
    low = q8 & 15
    qs = (low[:, 0::2, :] | (low[:, 1::2, :] << 4)).reshape(-1, 128)
    qh = np.zeros((q.shape[0], 32), dtype=np.uint8)
    for i in range(8):
        qh |= ((q8[:, i, :] >> 4) & 1) << i
    return np.concatenate([d.view(np.uint8).reshape(-1, 2), dmin.view(np.uint8).reshape(-1, 2),
                           _pack_scales(sc, m), qh, qs], axis=1)


def _quant_q6_k(x):
    sub = x.reshape(-1, 16, 16)
    amax = np.abs(sub).max(axis=2)
    scale = amax / 31
    d = _f16(scale.max(axis=1) / 127)
    df = d.astype(np.float32)[:, None]
    with np.errstate(divide="ignore", invalid="ignore"):
        sc = np.where(df > 0, np.rint(scale / df), 0)
    sc = np.clip(sc, -128, 127).astype(np.int8)
    step = (df * sc.astype(np.float32))[:, :, None]
    with np.errstate(divide="ignore", invalid="ignore"):
        q = np.where(step != 0, np.rint(sub / step), 0)
    q = (np.clip(q, -32, 31) + 32).astype(np.uint8).reshape(-1, 2, 4, 32)  # [n][g][l]
    low, high = q & 15, q >> 4
    ql = np.concatenate([low[:, :, 0] | (low[:, :, 2] << 4), low[:, :, 1] | (low[:, :, 3] << 4)],
                        axis=2).reshape(-1, 128)
    qh = (high[:, :, 0] | (high[:, :, 1] << 2) | (high[:, :, 2] << 4) |
          (high[:, :, 3] << 6)).reshape(-1, 64)
    return np.concatenate([ql, qh, sc.view(np.uint8), d.view(np.uint8).reshape(-1, 2)], axis=1)


def quantize(data, qtype):
    """(rows, cols) f32, cols a multiple of 256 -> (rows, cols / 256 * block bytes) uint8."""
    data = np.ascontiguousarray(data, dtype=np.float32)
    rows, cols = data.shape
    if cols % QK:
        raise ValueError(f"{qtype} needs a multiple of {QK} columns, got {cols}")
    fn = {"q4_k": _quant_q4_k, "q5_k": _quant_q5_k, "q6_k": _quant_q6_k}[qtype]
    blocks = fn(data.reshape(-1, QK))
    assert blocks.shape[1] == BLOCK_BYTES[qtype]
    return np.ascontiguousarray(blocks.reshape(rows, -1))
