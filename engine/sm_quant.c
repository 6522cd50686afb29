/* sm_quant: number formats of the engine: f16 and bf16 conversions, the GGUF block formats q8_0
 * and q4_0 (quantization follows the ggml reference / python `gguf` package formulas bit for
 * bit, so weights quantized at load equal those in a GGUF file), and the dequantization of the
 * K-quant super-blocks q4_k, q5_k and q6_k (the gguf package's arithmetic, bit for bit). */
#include "kernels_isa.h"

#include <math.h>
#include <string.h>

float sm_bf16_to_f32(uint16_t v)
{
    uint32_t u = (uint32_t)v << 16;
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

uint16_t sm_f32_to_bf16(float v)
{
    uint32_t u;
    memcpy(&u, &v, sizeof u);
    if ((u & 0x7fffffffu) > 0x7f800000u) /* NaN: keep it a quiet NaN */
        return (uint16_t)((u >> 16) | 0x0040u);
    u += 0x7fffu + ((u >> 16) & 1u); /* round to nearest, ties to even */
    return (uint16_t)(u >> 16);
}

float sm_f16_to_f32(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t exp = (h >> 10) & 0x1fu;
    uint32_t man = h & 0x3ffu;
    uint32_t u;
    if (exp == 0x1f) {
        u = sign | 0x7f800000u | (man << 13);
    } else if (exp != 0) {
        u = sign | ((exp + 112) << 23) | (man << 13);
    } else if (man == 0) {
        u = sign;
    } else { /* subnormal: normalise */
        int e = -1;
        do {
            e++;
            man <<= 1;
        } while ((man & 0x400u) == 0);
        u = sign | ((uint32_t)(112 - e) << 23) | ((man & 0x3ffu) << 13);
    }
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

uint16_t sm_f32_to_f16(float v)
{
    uint32_t u;
    memcpy(&u, &v, sizeof u);
    uint16_t sign = (uint16_t)((u >> 16) & 0x8000u);
    uint32_t a = u & 0x7fffffffu;
    if (a > 0x7f800000u) /* NaN */
        return (uint16_t)(sign | 0x7e00u | ((a >> 13) & 0x3ffu));
    if (a >= 0x477ff000u) /* rounds to >= 65520: infinity */
        return (uint16_t)(sign | 0x7c00u);
    if (a < 0x38800000u) {   /* below the smallest normal f16 (2^-14): subnormal or zero */
        if (a < 0x33000000u) /* below half the smallest subnormal (2^-25): zero */
            return sign;
        uint32_t e = a >> 23;                     /* 102..112 */
        uint32_t m = (a & 0x7fffffu) | 0x800000u; /* 24-bit significand */
        uint32_t shift = 126 - e;                 /* value = m * 2^(e-150); f16 unit 2^-24 */
        uint32_t q = m >> shift;
        uint32_t rem = m & ((1u << shift) - 1);
        uint32_t half = 1u << (shift - 1);
        if (rem > half || (rem == half && (q & 1u)))
            q++;
        return (uint16_t)(sign | q);
    }
    uint32_t r = a + 0xfffu + ((a >> 13) & 1u); /* round to nearest even on bit 13 */
    r -= 0x38000000u;                           /* rebias exponent 127 -> 15 */
    return (uint16_t)(sign | (r >> 13));
}

size_t sm_dtype_row_bytes(sm_dtype t, int64_t cols)
{
    if (cols < 0)
        return 0;
    switch (t) {
    case SM_DTYPE_F32:
        return (size_t)cols * 4;
    case SM_DTYPE_F16:
    case SM_DTYPE_BF16:
        return (size_t)cols * 2;
    case SM_DTYPE_Q8_0:
        return (size_t)(cols / SM_QBLOCK) * 34;
    case SM_DTYPE_Q4_0:
        return (size_t)(cols / SM_QBLOCK) * 18;
    case SM_DTYPE_Q4_K:
        return (size_t)(cols / SM_QK_BLOCK) * 144;
    case SM_DTYPE_Q5_K:
        return (size_t)(cols / SM_QK_BLOCK) * 176;
    case SM_DTYPE_Q6_K:
        return (size_t)(cols / SM_QK_BLOCK) * 210;
    default:
        return 0;
    }
}

int64_t sm_dtype_block(sm_dtype t)
{
    if (t == SM_DTYPE_Q8_0 || t == SM_DTYPE_Q4_0)
        return SM_QBLOCK;
    return sm_dtype_is_kquant(t) ? SM_QK_BLOCK : 1;
}

bool sm_dtype_is_kquant(sm_dtype t)
{
    return t == SM_DTYPE_Q4_K || t == SM_DTYPE_Q5_K || t == SM_DTYPE_Q6_K;
}

void sm_kq_scale_min(const uint8_t *s, int j, int *sc, int *m)
{
    if (j < 4) {
        *sc = s[j] & 63;
        *m = s[j + 4] & 63;
    } else {
        *sc = (s[j + 4] & 0x0f) | ((s[j - 4] >> 6) << 4);
        *m = (s[j + 4] >> 4) | ((s[j] >> 6) << 4);
    }
}

static float f16_at(const uint8_t *p)
{
    uint16_t h;
    memcpy(&h, p, 2);
    return sm_f16_to_f32(h);
}

/* Q4_K (qh == NULL) and Q5_K super-blocks: values 64c..64c+31 are the low nibbles of qs[32c..],
 * 64c+32.. the high ones; Q5_K's 5th bit of value 64c+32h+l is bit 2c+h of qh[l]. */
static void dequant_q45_k(const uint8_t *b, const uint8_t *qh, const uint8_t *qs, float *y)
{
    float d = f16_at(b), dmin = f16_at(b + 2);
    for (int c = 0; c < 4; c++) {
        for (int h = 0; h < 2; h++) {
            int sc, m;
            sm_kq_scale_min(b + 4, 2 * c + h, &sc, &m);
            float d1 = d * (float)sc, m1 = dmin * (float)m;
            for (int l = 0; l < 32; l++) {
                int q = (qs[32 * c + l] >> (4 * h)) & 0x0f;
                if (qh)
                    q |= ((qh[l] >> (2 * c + h)) & 1) << 4;
                y[64 * c + 32 * h + l] = d1 * (float)q - m1;
            }
        }
    }
}

/* Q6_K: value 128n + 32g + l has low bits in ql[64n + l + 32(g&1)] (nibble g>>1), high bits
 * (2g..2g+1) in qh[32n + l], scale scales[v / 16]; q - 32. */
static void dequant_q6_k(const uint8_t *b, float *y)
{
    const uint8_t *ql = b, *qh = b + 128;
    const int8_t *sc = (const int8_t *)(b + 192);
    float d = f16_at(b + 208);
    for (int v = 0; v < SM_QK_BLOCK; v++) {
        int n = v / 128, g = (v % 128) / 32, l = v % 32;
        int lo = (ql[64 * n + l + 32 * (g & 1)] >> (4 * (g >> 1))) & 0x0f;
        int hi = (qh[32 * n + l] >> (2 * g)) & 3;
        y[v] = (d * (float)sc[v / 16]) * (float)((lo | (hi << 4)) - 32);
    }
}

static void dequant_k(sm_dtype t, const uint8_t *s, int64_t cols, float *dst)
{
    size_t bsz = sm_dtype_row_bytes(t, SM_QK_BLOCK);
    for (int64_t b = 0; b < cols / SM_QK_BLOCK; b++, s += bsz) {
        float *y = dst + b * SM_QK_BLOCK;
        if (t == SM_DTYPE_Q4_K)
            dequant_q45_k(s, NULL, s + 16, y);
        else if (t == SM_DTYPE_Q5_K)
            dequant_q45_k(s, s + 16, s + 48, y);
        else
            dequant_q6_k(s, y);
    }
}

static void q8_0_quantize_block(const float *x, uint8_t *out)
{
    float amax = 0.0f;
    for (int j = 0; j < SM_QBLOCK; j++) {
        float a = fabsf(x[j]);
        if (amax < a)
            amax = a;
    }
    float d = amax / 127.0f;
    float id = d != 0.0f ? 1.0f / d : 0.0f;
    uint16_t dh = sm_f32_to_f16(d);
    memcpy(out, &dh, 2);
    for (int j = 0; j < SM_QBLOCK; j++) {
        float q = roundf(x[j] * id);
        q = fminf(fmaxf(q, -128.0f), 127.0f); /* only NaN/inf inputs can leave the range */
        out[2 + j] = (uint8_t)(int8_t)q;
    }
}

static void q4_0_quantize_block(const float *x, uint8_t *out)
{
    float amax = 0.0f, max = 0.0f;
    for (int j = 0; j < SM_QBLOCK; j++) {
        float a = fabsf(x[j]);
        if (amax < a) {
            amax = a;
            max = x[j];
        }
    }
    float d = max / -8.0f;
    float id = d != 0.0f ? 1.0f / d : 0.0f;
    uint16_t dh = sm_f32_to_f16(d);
    memcpy(out, &dh, 2);
    uint8_t q[SM_QBLOCK];
    for (int j = 0; j < SM_QBLOCK; j++) {
        /* as the gguf package: the product and + 8.5 in double, rounded to float, truncated */
        float v = (float)((double)x[j] * (double)id + 8.5);
        v = fminf(fmaxf(truncf(v), 0.0f), 15.0f);
        q[j] = (uint8_t)v;
    }
    for (int j = 0; j < SM_QBLOCK / 2; j++)
        out[2 + j] = (uint8_t)(q[j] | (q[j + SM_QBLOCK / 2] << 4));
}

static sm_code check_cols(sm_dtype t, int64_t cols, sm_err *err)
{
    if (t < 0 || t >= SM_DTYPE_COUNT)
        return sm_err_set(err, SM_EINVAL, "unknown dtype %d", (int)t);
    if (cols < 0)
        return sm_err_set(err, SM_EINVAL, "negative column count %lld", (long long)cols);
    if (cols % sm_dtype_block(t) != 0)
        return sm_err_set(err, SM_EINVAL, "%s rows need a multiple of %lld values, got %lld",
                          sm_dtype_name(t), (long long)sm_dtype_block(t), (long long)cols);
    return SM_OK;
}

sm_code sm_dequantize_row(sm_dtype t, const void *src, int64_t cols, float *dst, sm_err *err)
{
    sm_code rc = check_cols(t, cols, err);
    if (rc != SM_OK)
        return rc;
    if (!src || !dst)
        return sm_err_set(err, SM_EINVAL, "null buffer");
    const uint8_t *s = src;
    switch (t) {
    case SM_DTYPE_F32:
        memcpy(dst, src, (size_t)cols * 4);
        break;
    case SM_DTYPE_F16:
        for (int64_t i = 0; i < cols; i++) {
            uint16_t h;
            memcpy(&h, s + 2 * i, 2);
            dst[i] = sm_f16_to_f32(h);
        }
        break;
    case SM_DTYPE_BF16:
        for (int64_t i = 0; i < cols; i++) {
            uint16_t h;
            memcpy(&h, s + 2 * i, 2);
            dst[i] = sm_bf16_to_f32(h);
        }
        break;
    case SM_DTYPE_Q8_0:
        for (int64_t b = 0; b < cols / SM_QBLOCK; b++, s += 34) {
            uint16_t dh;
            memcpy(&dh, s, 2);
            float d = sm_f16_to_f32(dh);
            for (int j = 0; j < SM_QBLOCK; j++)
                dst[b * SM_QBLOCK + j] = d * (float)(int8_t)s[2 + j];
        }
        break;
    case SM_DTYPE_Q4_0:
        for (int64_t b = 0; b < cols / SM_QBLOCK; b++, s += 18) {
            uint16_t dh;
            memcpy(&dh, s, 2);
            float d = sm_f16_to_f32(dh);
            for (int j = 0; j < SM_QBLOCK / 2; j++) {
                dst[b * SM_QBLOCK + j] = d * (float)((s[2 + j] & 0x0f) - 8);
                dst[b * SM_QBLOCK + j + SM_QBLOCK / 2] = d * (float)((s[2 + j] >> 4) - 8);
            }
        }
        break;
    case SM_DTYPE_Q4_K:
    case SM_DTYPE_Q5_K:
    case SM_DTYPE_Q6_K:
        dequant_k(t, s, cols, dst);
        break;
    default:
        break;
    }
    return SM_OK;
}

sm_code sm_quantize_row(sm_dtype t, const float *src, int64_t cols, void *dst, sm_err *err)
{
    sm_code rc = check_cols(t, cols, err);
    if (rc != SM_OK)
        return rc;
    if (!src || !dst)
        return sm_err_set(err, SM_EINVAL, "null buffer");
    if (sm_dtype_is_kquant(t))
        return sm_err_set(err, SM_EUNSUPPORTED,
                          "quantizing to %s is not supported (K-quant weights load as stored)",
                          sm_dtype_name(t));
    uint8_t *d = dst;
    switch (t) {
    case SM_DTYPE_F32:
        memcpy(dst, src, (size_t)cols * 4);
        break;
    case SM_DTYPE_F16:
        for (int64_t i = 0; i < cols; i++) {
            uint16_t h = sm_f32_to_f16(src[i]);
            memcpy(d + 2 * i, &h, 2);
        }
        break;
    case SM_DTYPE_BF16:
        for (int64_t i = 0; i < cols; i++) {
            uint16_t h = sm_f32_to_bf16(src[i]);
            memcpy(d + 2 * i, &h, 2);
        }
        break;
    case SM_DTYPE_Q8_0:
        for (int64_t b = 0; b < cols / SM_QBLOCK; b++)
            q8_0_quantize_block(src + b * SM_QBLOCK, d + b * 34);
        break;
    case SM_DTYPE_Q4_0:
        for (int64_t b = 0; b < cols / SM_QBLOCK; b++)
            q4_0_quantize_block(src + b * SM_QBLOCK, d + b * 18);
        break;
    default:
        break;
    }
    return SM_OK;
}
