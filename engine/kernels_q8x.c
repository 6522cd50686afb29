/* kernels_q8x: the packed q8_0 weight layouts that the AVX2 and AVX-512 VNNI variants read
 * q8_0 weights from (repacked once at load), and the matching activation layout. Portable code:
 * packing, unpacking to f32 (embedding rows, sgemm tiles), the activations' interleaving and
 * the layouts' sizes; the products are in kernels_q8x_tmpl.h.
 *
 * A layout has a width L of 8 (AVX2: 256-bit vectors) or 16 (AVX-512) blocks per group. A row
 * of cols values is ng = ceil(cols / (32 L)) groups (the last one padded with zero blocks of
 * scale 0):
 *   [ng x 32 L weight bytes][ng x L f16 scales][zeros up to a multiple of 4 L bytes]
 * Group G's weight bytes are 8 vectors of 4 L bytes; byte 4 j + e of vector v is value 4 v + e
 * of block L G + j: one 4-byte dot-product lane per block, so 8 vector products give each of
 * the L blocks its exact integer sum in its own lane, with no reduction across lanes. Width 16
 * stores each value plus 128 (unsigned, as vpdpbusd wants its first operand); width 8 stores
 * the values as they are (AVX2 moves their signs to the activations, vpsignb).
 *
 * Activations, per batch row: ng groups of 40 L bytes: the 32 L int8 values in the same order,
 * L f32 block scales, L int32 corrections: -128 * (sum of the block's values) for width 16,
 * which take back the 128 added to the weights; zero for width 8. */
#include <string.h>

#include "kernels_isa.h"

int64_t sm_q8x_groups(int width, int64_t cols)
{
    return (cols / SM_QBLOCK + width - 1) / width;
}

size_t sm_q8x_row_bytes(int width, int64_t cols)
{
    size_t bytes = (size_t)sm_q8x_groups(width, cols) * (size_t)(34 * width);
    size_t vec = (size_t)(4 * width); /* rows start on a whole vector: no load splits a line */
    return (bytes + vec - 1) / vec * vec;
}

size_t sm_q8x_x_bytes(int width, int64_t cols)
{
    return (size_t)sm_q8x_groups(width, cols) * (size_t)(40 * width);
}

/* offset of bytes 4v .. 4v+3 of block j (of its group) within the group's values */
static size_t q8x_quad(int width, int64_t j, int v)
{
    return (size_t)v * (size_t)(4 * width) + (size_t)j * 4;
}

void sm_q8x_pack_row(int width, const uint8_t *q8, int64_t cols, uint8_t *dst)
{
    int64_t nblk = cols / SM_QBLOCK, ng = sm_q8x_groups(width, cols);
    int offset = width == 16 ? 128 : 0;
    size_t wbytes = (size_t)ng * (size_t)(32 * width);
    memset(dst, 0, sm_q8x_row_bytes(width, cols));
    memset(dst, offset, wbytes);
    for (int64_t k = 0; k < nblk; k++) {
        const uint8_t *b = q8 + 34 * (size_t)k;
        uint8_t *grp = dst + (size_t)(k / width) * (size_t)(32 * width);
        memcpy(dst + wbytes + 2 * (size_t)k, b, 2);
        for (int i = 0; i < SM_QBLOCK; i++)
            grp[q8x_quad(width, k % width, i / 4) + (size_t)(i % 4)] =
                (uint8_t)((int)(int8_t)b[2 + i] + offset);
    }
}

void sm_q8x_row_to_f32(int width, const uint8_t *src, int64_t cols, float *dst)
{
    int64_t nblk = cols / SM_QBLOCK, ng = sm_q8x_groups(width, cols);
    int offset = width == 16 ? 128 : 0;
    const uint8_t *scales = src + (size_t)ng * (size_t)(32 * width);
    for (int64_t k = 0; k < nblk; k++) {
        uint16_t dh;
        memcpy(&dh, scales + 2 * k, 2);
        float d = sm_f16_to_f32(dh);
        const uint8_t *grp = src + (size_t)(k / width) * (size_t)(32 * width);
        for (int i = 0; i < SM_QBLOCK; i++) {
            uint8_t u = grp[q8x_quad(width, k % width, i / 4) + (size_t)(i % 4)];
            int v = width == 16 ? (int)u - offset : (int)(int8_t)u;
            dst[k * SM_QBLOCK + i] = d * (float)v;
        }
    }
}

void sm_q8x_interleave_x(int width, const int8_t *q, const float *d, int64_t nblk,
                         uint8_t *group)
{
    memset(group, 0, (size_t)(40 * width));
    float *scales = (float *)(void *)(group + 32 * width);
    int32_t *corr = (int32_t *)(void *)(group + 36 * width);
    for (int64_t j = 0; j < nblk; j++) {
        const int8_t *b = q + j * SM_QBLOCK;
        for (int v = 0; v < 8; v++)
            memcpy(group + q8x_quad(width, j, v), b + 4 * v, 4);
        scales[j] = d[j];
        if (width == 16) {
            int32_t sum = 0;
            for (int i = 0; i < SM_QBLOCK; i++)
                sum += b[i];
            corr[j] = -128 * sum;
        }
    }
}
