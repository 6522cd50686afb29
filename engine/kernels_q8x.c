/* kernels_q8x: the packed q8_0 weight layouts that the AVX2 and AVX-512 VNNI variants read
 * q8_0 weights from (repacked once at load), and the matching activation layouts. Portable
 * code: packing, unpacking to f32 (embedding rows, sgemm tiles), the activations' layouts and
 * the layouts' sizes; the products are in kernels_q8x_tmpl.h (AVX2) and kernels_avx512_q8x.c.
 *
 * Width 8 (AVX2), blocks in groups along a row. A row of cols values is ng = ceil(cols / 256)
 * groups (the last one padded with zero blocks of scale 0):
 *   [ng x 256 weight bytes][ng x 8 f16 scales][zeros up to a multiple of 32 bytes]
 * Group G's weight bytes are 8 vectors of 32 bytes; byte 4 j + e of vector v is value 4 v + e
 * of block 8 G + j: one 4-byte dot-product lane per block, so 8 vector products give each of
 * the 8 blocks its exact integer sum in its own lane, with no reduction across lanes. The
 * values are stored as they are (AVX2 moves their signs to the activations, vpsignb).
 * Activations, per batch row: ng groups of 288 bytes: the 256 int8 values in the same order,
 * then the 8 f32 block scales.
 *
 * Width 16 (AVX-512), rows in groups of 16, one dot-product lane per row. A group of 16 rows
 * (the last one padded with zero rows) of nblk = cols / 32 blocks is
 *   [nblk x 512 weight bytes][nblk x 16 f16 scales][zeros up to a multiple of 64 bytes]
 * Block k's 512 bytes are 8 vectors of 64; bytes 4 l .. 4 l + 3 of vector v are values
 * 4 v .. 4 v + 3 of block k of row l, plus 128 (unsigned, as vpdpbusd wants its first
 * operand); its scales are row l's at 2 l. A vector product with 4 activation values
 * broadcast adds them into every row's own lane, so 8 give 16 rows' exact block sums and one
 * conversion, scale product and multiply-add take them into 16 outputs: no sums across lanes.
 * Activations, per batch row (q8r_x_bytes): the cols int8 values as quantized, nblk int32
 * corrections -128 x (sum of the block's values), which take back the 128 added to the
 * weights, nblk f32 block scales, zeros up to a multiple of 64 bytes.
 *
 * q4_0, width 8 (AVX2): the groups of q8_0's width 8 with 4-bit values. A row is
 *   [ng x 128 value bytes][ng x 8 f16 scales][zeros up to a multiple of 32 bytes]
 * (18 bytes per block, as in the file). Group G's value bytes are 4 vectors of 32 bytes; byte
 * 4 j + e of vector u holds in its low 4 bits the q8_0 layout's byte 4 j + e of vector 2 u,
 * in its high 4 bits that of vector 2 u + 1, as q4_0 stores them (the value plus 8). The
 * activation groups are q8_0's plus 8 int32 corrections, -8 x (sum of each block's values),
 * so that each block's lane ends with the exact sum of (q - 8) x.
 *
 * q4_k, width 8 (AVX2): a super-block of 256 values is one group, its 8 sub-blocks of 32 the
 * group's 8 blocks, their 4-bit values placed as for q4_0 (as stored, 0..15). A row is
 *   [ng x 128 value bytes][ng x 20 scale bytes][zeros up to a multiple of 32 bytes]
 * where a group's 20 scale bytes are the 8 sub-blocks' 6-bit scales, their 8 6-bit mins (one
 * byte each, unpacked from the file's 12) and the f16 d and dmin as stored: the same numbers,
 * so that rows read back bit for bit as the file's dequantize. The activation groups are
 * q8_0's plus 8 f32 sums at SM_Q4X_XCORR: each block's scale times the sum of its values
 * (sm_kq_x_sums), for the mins. q5_k's layout is q4_k's with a vector of 5th bits after each
 * group's 4-bit values (byte 4 j + e, bit v: that of the q8_0 layout's byte 4 j + e of vector
 * v), 180 bytes per 256 values against the file's 176.
 *
 * q6_k, width 8 (AVX2): a super-block per group, its 32-value parts as the group's blocks, each
 * the two 16-value halves of two scales. A row is
 *   [ng x 192 value bytes][ng x 18 scale bytes][zeros up to a multiple of 32 bytes]
 * (210 bytes per 256 values, as in the file). A group's value bytes are the low 4 bits placed
 * as q4_0's (128 bytes), then the high 2 bits in 2 vectors of 32 bytes: byte 4 j + e of vector
 * k holds, in bits 2 (v - 4 k), those of the q8_0 layout's byte 4 j + e of vector v, for v =
 * 4 k .. 4 k + 3. The scale bytes are the 16 int8 scales ordered by block (block j's first
 * half, then its second), then the f16 d. Values are stored as the file's, 0..63 (the value
 * plus 32). The activation groups are q8_0's plus, at SM_Q4X_XCORR, 8 pairs of int16: each
 * block's two half sums, from which the products take back the 32 (times each half's scale). */
#include <string.h>

#include "kernels_isa.h"

int64_t sm_q8x_groups(int width, int64_t cols)
{
    return (cols / SM_QBLOCK + width - 1) / width;
}

static size_t q8x_row_bytes(int width, int64_t cols)
{
    size_t bytes = (size_t)sm_q8x_groups(width, cols) * (size_t)(34 * width);
    size_t vec = (size_t)(4 * width); /* rows start on a whole vector: no load splits a line */
    return (bytes + vec - 1) / vec * vec;
}

/* offset of bytes 4v .. 4v+3 of block j (of its group) within the group's values */
static size_t q8x_quad(int width, int64_t j, int v)
{
    return (size_t)v * (size_t)(4 * width) + (size_t)j * 4;
}

static void q8x_pack_row(int width, const uint8_t *q8, int64_t cols, uint8_t *dst)
{
    int64_t nblk = cols / SM_QBLOCK, ng = sm_q8x_groups(width, cols);
    size_t wbytes = (size_t)ng * (size_t)(32 * width);
    memset(dst, 0, q8x_row_bytes(width, cols));
    for (int64_t k = 0; k < nblk; k++) {
        const uint8_t *b = q8 + 34 * (size_t)k;
        uint8_t *grp = dst + (size_t)(k / width) * (size_t)(32 * width);
        memcpy(dst + wbytes + 2 * (size_t)k, b, 2);
        for (int i = 0; i < SM_QBLOCK; i++)
            grp[q8x_quad(width, k % width, i / 4) + (size_t)(i % 4)] = b[2 + i];
    }
}

static void q8x_row_to_f32(int width, const uint8_t *src, int64_t cols, float *dst)
{
    int64_t nblk = cols / SM_QBLOCK, ng = sm_q8x_groups(width, cols);
    const uint8_t *scales = src + (size_t)ng * (size_t)(32 * width);
    for (int64_t k = 0; k < nblk; k++) {
        uint16_t dh;
        memcpy(&dh, scales + 2 * k, 2);
        float d = sm_f16_to_f32(dh);
        const uint8_t *grp = src + (size_t)(k / width) * (size_t)(32 * width);
        for (int i = 0; i < SM_QBLOCK; i++) {
            int8_t v = (int8_t)grp[q8x_quad(width, k % width, i / 4) + (size_t)(i % 4)];
            dst[k * SM_QBLOCK + i] = d * (float)v;
        }
    }
}

void sm_q8x_interleave_x(int width, const int8_t *q, const float *d, int64_t nblk, uint8_t *group)
{
    memset(group, 0, (size_t)(36 * width));
    float *scales = (float *)(void *)(group + 32 * width);
    for (int64_t j = 0; j < nblk; j++) {
        for (int v = 0; v < 8; v++)
            memcpy(group + q8x_quad(width, j, v), q + j * SM_QBLOCK + 4 * v, 4);
        scales[j] = d[j];
    }
}

/* ---- q4_0, width 8 ---- */

static size_t q4x_row_bytes(int64_t cols)
{
    size_t bytes = (size_t)sm_q8x_groups(8, cols) * 144;
    return (bytes + 31) / 32 * 32;
}

size_t sm_q4x_x_bytes(int64_t cols)
{
    return (size_t)sm_q8x_groups(8, cols) * SM_Q4X_XGROUP;
}

/* 4-bit value i (0..31, the value plus 8) of a GGUF q4_0 block's 16 value bytes */
static int q4_0_nibble(const uint8_t *qs, int i)
{
    return i < 16 ? qs[i] & 0x0f : qs[i - 16] >> 4;
}

static void q4x_pack_row(const uint8_t *q4, int64_t cols, uint8_t *dst)
{
    int64_t nblk = cols / SM_QBLOCK, ng = sm_q8x_groups(8, cols);
    size_t wbytes = (size_t)ng * 128;
    memset(dst, 0, q4x_row_bytes(cols));
    for (int64_t k = 0; k < nblk; k++) {
        const uint8_t *b = q4 + 18 * (size_t)k;
        uint8_t *grp = dst + (size_t)(k / 8) * 128;
        memcpy(dst + wbytes + 2 * (size_t)k, b, 2);
        for (int i = 0; i < SM_QBLOCK; i++) {
            int v = i / 4; /* the q8_0 layout's vector of value i */
            uint8_t *byte = grp + q8x_quad(8, k % 8, v / 2) + (size_t)(i % 4);
            *byte |= (uint8_t)(q4_0_nibble(b + 2, i) << (v % 2 ? 4 : 0));
        }
    }
}

static void q4x_row_to_f32(const uint8_t *src, int64_t cols, float *dst)
{
    int64_t nblk = cols / SM_QBLOCK, ng = sm_q8x_groups(8, cols);
    const uint8_t *scales = src + (size_t)ng * 128;
    for (int64_t k = 0; k < nblk; k++) {
        uint16_t dh;
        memcpy(&dh, scales + 2 * k, 2);
        float d = sm_f16_to_f32(dh);
        const uint8_t *grp = src + (size_t)(k / 8) * 128;
        for (int i = 0; i < SM_QBLOCK; i++) {
            int v = i / 4;
            uint8_t byte = grp[q8x_quad(8, k % 8, v / 2) + (size_t)(i % 4)];
            int q = (v % 2 ? byte >> 4 : byte & 0x0f) - 8;
            dst[k * SM_QBLOCK + i] = d * (float)q;
        }
    }
}

static void q4x_finish_x(uint8_t *group, const int8_t *q, const float *d, int64_t nblk)
{
    (void)d;
    int32_t corr[8] = {0}; /* blocks past nblk (padding): 0 */
    for (int64_t j = 0; j < nblk; j++) {
        for (int i = 0; i < SM_QBLOCK; i++)
            corr[j] += q[SM_QBLOCK * j + i];
        corr[j] *= -8;
    }
    memcpy(group + SM_Q4X_XCORR, corr, sizeof corr);
}

/* ---- q4_k, width 8 ---- */

/* q4_k (five false) and q5_k: value bytes per group (q5_k adds a vector of 5th bits: byte
 * 4 j + e holds in bit v that of the q8_0 layout's byte 4 j + e of vector v) */
static size_t q45kx_group_values(bool five)
{
    return five ? 160 : 128;
}

static size_t q45kx_row_bytes(bool five, int64_t cols)
{
    size_t bytes = (size_t)(cols / SM_QK_BLOCK) * (q45kx_group_values(five) + 20);
    return (bytes + 31) / 32 * 32;
}

static size_t q4kx_row_bytes(int64_t cols)
{
    return q45kx_row_bytes(false, cols);
}

static size_t q5kx_row_bytes(int64_t cols)
{
    return q45kx_row_bytes(true, cols);
}

static void q45kx_pack_row(bool five, const uint8_t *src, int64_t cols, uint8_t *dst)
{
    int64_t ng = cols / SM_QK_BLOCK;
    size_t gv = q45kx_group_values(five), bb = five ? 176 : 144;
    memset(dst, 0, q45kx_row_bytes(five, cols));
    for (int64_t g = 0; g < ng; g++) {
        const uint8_t *b = src + bb * (size_t)g, *qh = b + 16, *qs = b + (five ? 48 : 16);
        uint8_t *grp = dst + (size_t)g * gv, *sc = dst + (size_t)ng * gv + 20 * (size_t)g;
        for (int j = 0; j < 8; j++) {
            int scale, min;
            sm_kq_scale_min(b + 4, j, &scale, &min);
            sc[j] = (uint8_t)scale;
            sc[8 + j] = (uint8_t)min;
            /* sub-block j = 2 c + h: nibble h of qs[32 c + l], 5th bit j of qh[l] */
            for (int l = 0; l < 32; l++) {
                int q = (qs[32 * (j / 2) + l] >> (4 * (j % 2))) & 0x0f, v = l / 4;
                size_t at = q8x_quad(8, j, 0) + (size_t)(l % 4);
                grp[at + 32 * (size_t)(v / 2)] |= (uint8_t)(q << (v % 2 ? 4 : 0));
                if (five)
                    grp[128 + at] |= (uint8_t)(((qh[l] >> j) & 1) << v);
            }
        }
        memcpy(sc + 16, b, 4); /* d, dmin */
    }
}

static void q4kx_pack_row(const uint8_t *q4k, int64_t cols, uint8_t *dst)
{
    q45kx_pack_row(false, q4k, cols, dst);
}

static void q5kx_pack_row(const uint8_t *q5k, int64_t cols, uint8_t *dst)
{
    q45kx_pack_row(true, q5k, cols, dst);
}

static void q45kx_row_to_f32(bool five, const uint8_t *src, int64_t cols, float *dst)
{
    int64_t ng = cols / SM_QK_BLOCK;
    size_t gv = q45kx_group_values(five);
    for (int64_t g = 0; g < ng; g++) {
        const uint8_t *grp = src + (size_t)g * gv, *sc = src + (size_t)ng * gv + 20 * (size_t)g;
        uint16_t dh[2];
        memcpy(dh, sc + 16, 4);
        float d = sm_f16_to_f32(dh[0]), dmin = sm_f16_to_f32(dh[1]);
        for (int j = 0; j < 8; j++) {
            float d1 = d * (float)sc[j], m1 = dmin * (float)sc[8 + j];
            for (int l = 0; l < 32; l++) {
                int v = l / 4;
                size_t at = q8x_quad(8, j, 0) + (size_t)(l % 4);
                uint8_t byte = grp[at + 32 * (size_t)(v / 2)];
                int q = v % 2 ? byte >> 4 : byte & 0x0f;
                if (five)
                    q |= ((grp[128 + at] >> v) & 1) << 4;
                dst[g * SM_QK_BLOCK + 32 * j + l] = d1 * (float)q - m1;
            }
        }
    }
}

static void q4kx_row_to_f32(const uint8_t *src, int64_t cols, float *dst)
{
    q45kx_row_to_f32(false, src, cols, dst);
}

static void q5kx_row_to_f32(const uint8_t *src, int64_t cols, float *dst)
{
    q45kx_row_to_f32(true, src, cols, dst);
}

static void q45kx_finish_x(uint8_t *group, const int8_t *q, const float *d, int64_t nblk)
{
    float xs[8] = {0};
    sm_kq_x_sums(q, d, nblk, xs);
    memcpy(group + SM_Q4X_XCORR, xs, sizeof xs);
}

/* ---- q6_k, width 8 ---- */

static size_t q6kx_row_bytes(int64_t cols)
{
    size_t bytes = (size_t)(cols / SM_QK_BLOCK) * 210;
    return (bytes + 31) / 32 * 32;
}

/* 6-bit value vv (0..255) of a GGUF q6_k super-block, 0..63 */
static int q6_k_value(const uint8_t *b, int vv)
{
    int n = vv / 128, g = (vv % 128) / 32, l = vv % 32;
    int lo = (b[64 * n + l + 32 * (g & 1)] >> (4 * (g >> 1))) & 0x0f;
    int hi = (b[128 + 32 * n + l] >> (2 * g)) & 3;
    return lo | (hi << 4);
}

static void q6kx_pack_row(const uint8_t *q6k, int64_t cols, uint8_t *dst)
{
    int64_t ng = cols / SM_QK_BLOCK;
    memset(dst, 0, q6kx_row_bytes(cols));
    for (int64_t g = 0; g < ng; g++) {
        const uint8_t *b = q6k + 210 * (size_t)g;
        uint8_t *grp = dst + (size_t)g * 192, *sc = dst + (size_t)ng * 192 + 18 * (size_t)g;
        for (int j = 0; j < 8; j++) {
            sc[2 * j] = b[192 + 2 * j];
            sc[2 * j + 1] = b[192 + 2 * j + 1];
            for (int i = 0; i < 32; i++) {
                int q = q6_k_value(b, 32 * j + i), v = i / 4;
                size_t at = q8x_quad(8, j, 0) + (size_t)(i % 4);
                grp[at + 32 * (size_t)(v / 2)] |= (uint8_t)((q & 0x0f) << (v % 2 ? 4 : 0));
                grp[128 + at + 32 * (size_t)(v / 4)] |= (uint8_t)((q >> 4) << (2 * (v % 4)));
            }
        }
        memcpy(sc + 16, b + 208, 2); /* d */
    }
}

static void q6kx_row_to_f32(const uint8_t *src, int64_t cols, float *dst)
{
    int64_t ng = cols / SM_QK_BLOCK;
    for (int64_t g = 0; g < ng; g++) {
        const uint8_t *grp = src + (size_t)g * 192, *sc = src + (size_t)ng * 192 + 18 * (size_t)g;
        uint16_t dh;
        memcpy(&dh, sc + 16, 2);
        float d = sm_f16_to_f32(dh);
        for (int j = 0; j < 8; j++)
            for (int i = 0; i < 32; i++) {
                int v = i / 4;
                size_t at = q8x_quad(8, j, 0) + (size_t)(i % 4);
                int lo = (grp[at + 32 * (size_t)(v / 2)] >> (v % 2 ? 4 : 0)) & 0x0f;
                int hi = (grp[128 + at + 32 * (size_t)(v / 4)] >> (2 * (v % 4))) & 3;
                float d1 = d * (float)(int8_t)sc[2 * j + i / 16];
                dst[g * SM_QK_BLOCK + 32 * j + i] = d1 * (float)((lo | (hi << 4)) - 32);
            }
    }
}

static void q6kx_finish_x(uint8_t *group, const int8_t *q, const float *d, int64_t nblk)
{
    (void)d;
    int16_t halves[16] = {0};
    for (int64_t j = 0; j < nblk; j++)
        for (int i = 0; i < 32; i++)
            halves[2 * j + i / 16] = (int16_t)(halves[2 * j + i / 16] + q[32 * j + i]);
    memcpy(group + SM_Q4X_XCORR, halves, sizeof halves);
}

const sm_w8_layout *sm_w8_layout_of(sm_dtype t)
{
    static const sm_w8_layout q4_0 = {q4x_row_bytes, q4x_pack_row, q4x_row_to_f32, q4x_finish_x};
    static const sm_w8_layout q4_k = {q4kx_row_bytes, q4kx_pack_row, q4kx_row_to_f32,
                                      q45kx_finish_x};
    static const sm_w8_layout q5_k = {q5kx_row_bytes, q5kx_pack_row, q5kx_row_to_f32,
                                      q45kx_finish_x};
    static const sm_w8_layout q6_k = {q6kx_row_bytes, q6kx_pack_row, q6kx_row_to_f32,
                                      q6kx_finish_x};
    switch (t) {
    case SM_DTYPE_Q4_0:
        return &q4_0;
    case SM_DTYPE_Q4_K:
        return &q4_k;
    case SM_DTYPE_Q5_K:
        return &q5_k;
    case SM_DTYPE_Q6_K:
        return &q6_k;
    default:
        return NULL;
    }
}

/* ---- width 16: rows in groups of 16 ---- */

static size_t round64(size_t n)
{
    return (n + 63) / 64 * 64;
}

static size_t q8r_group_bytes(int64_t cols)
{
    return round64((size_t)(cols / SM_QBLOCK) * 544);
}

static size_t q8r_x_bytes(int64_t cols)
{
    return round64((size_t)(cols / SM_QBLOCK) * 40);
}

static void q8r_pack_group(const uint8_t *q8, size_t q8_stride, int rows, int64_t cols,
                           uint8_t *dst)
{
    int64_t nblk = cols / SM_QBLOCK;
    memset(dst, 0, q8r_group_bytes(cols));
    memset(dst, 128, (size_t)nblk * 512); /* zero rows: the value 0 plus 128 */
    for (int l = 0; l < rows; l++) {
        const uint8_t *row = q8 + (size_t)l * q8_stride;
        for (int64_t k = 0; k < nblk; k++) {
            const uint8_t *b = row + 34 * (size_t)k;
            uint8_t *blk = dst + (size_t)k * 512 + 4 * (size_t)l;
            memcpy(dst + (size_t)nblk * 512 + 32 * (size_t)k + 2 * (size_t)l, b, 2);
            for (int i = 0; i < SM_QBLOCK; i++)
                blk[64 * (i / 4) + i % 4] = (uint8_t)((int)(int8_t)b[2 + i] + 128);
        }
    }
}

static void q8r_row_to_f32(const uint8_t *group, int lane, int64_t cols, float *dst)
{
    int64_t nblk = cols / SM_QBLOCK;
    for (int64_t k = 0; k < nblk; k++) {
        uint16_t dh;
        memcpy(&dh, group + (size_t)nblk * 512 + 32 * (size_t)k + 2 * (size_t)lane, 2);
        float d = sm_f16_to_f32(dh);
        const uint8_t *blk = group + (size_t)k * 512 + 4 * (size_t)lane;
        for (int i = 0; i < SM_QBLOCK; i++)
            dst[k * SM_QBLOCK + i] = d * (float)((int)blk[64 * (i / 4) + i % 4] - 128);
    }
}

void sm_q8r_finish_x(uint8_t *xrow, int64_t cols)
{
    int64_t nblk = cols / SM_QBLOCK;
    const int8_t *q = (const int8_t *)xrow;
    int32_t *corr = (int32_t *)(void *)(xrow + cols);
    for (int64_t k = 0; k < nblk; k++) {
        int32_t sum = 0;
        for (int i = 0; i < SM_QBLOCK; i++)
            sum += q[k * SM_QBLOCK + i];
        corr[k] = -128 * sum;
    }
    size_t used = (size_t)nblk * 40;
    memset(xrow + used, 0, q8r_x_bytes(cols) - used);
}

/* ---- either width: units of one row (width 8) or of 16 rows (width 16) ---- */

int sm_q8x_unit_rows(int width)
{
    return width == 16 ? 16 : 1;
}

size_t sm_q8x_unit_bytes(int width, int64_t cols)
{
    return width == 16 ? q8r_group_bytes(cols) : q8x_row_bytes(width, cols);
}

size_t sm_q8x_x_bytes(int width, int64_t cols)
{
    return width == 16 ? q8r_x_bytes(cols)
                       : (size_t)sm_q8x_groups(width, cols) * (size_t)(36 * width);
}

void sm_q8x_pack_unit(int width, const uint8_t *q8, size_t q8_stride, int rows, int64_t cols,
                      uint8_t *dst)
{
    if (width == 16) {
        q8r_pack_group(q8, q8_stride, rows, cols, dst);
        return;
    }
    q8x_pack_row(width, q8, cols, dst);
}

void sm_q8x_unit_row_to_f32(int width, const uint8_t *unit, int row, int64_t cols, float *dst)
{
    if (width == 16) {
        q8r_row_to_f32(unit, row, cols, dst);
        return;
    }
    q8x_row_to_f32(width, unit, cols, dst);
}
