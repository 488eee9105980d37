/* f16.c - IEEE half <-> float; see f16.h. */
#include "f16.h"

#include <string.h>

uint16_t bzn_f32_to_f16(float f) {
    uint32_t x;
    memcpy(&x, &f, 4);
    uint32_t sign = (x >> 16) & 0x8000u;
    uint32_t mag = x & 0x7FFFFFFFu;
    if (mag >= 0x7F800000u) /* inf or nan */
        return (uint16_t)(sign | 0x7C00u | (mag > 0x7F800000u ? 0x200u : 0));
    if (mag >= 0x477FF000u) return (uint16_t)(sign | 0x7C00u); /* rounds to >= 65520: inf */
    if (mag < 0x38800000u) {                                     /* subnormal half or zero */
        if (mag < 0x33000000u) return (uint16_t)sign;            /* below half of the smallest */
        uint32_t m = (mag & 0x7FFFFFu) | 0x800000u;
        int shift = 126 - (int)(mag >> 23); /* 14..24 */
        uint32_t r = m >> shift, rem = m & ((1u << shift) - 1), half = 1u << (shift - 1);
        if (rem > half || (rem == half && (r & 1))) r++;
        return (uint16_t)(sign | r);
    }
    uint32_t r = (mag >> 13) - (112u << 10); /* rebias exponent 127 -> 15 */
    uint32_t rem = mag & 0x1FFFu;
    if (rem > 0x1000u || (rem == 0x1000u && (r & 1))) r++;
    return (uint16_t)(sign | r);
}

float bzn_f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16, e = (h >> 10) & 0x1F, m = h & 0x3FFu, x;
    if (e == 0) {
        if (m == 0) {
            x = sign;
        } else { /* subnormal: normalise */
            int s = 0;
            while (!(m & 0x400u)) { m <<= 1; s++; }
            x = sign | (uint32_t)(113 - s) << 23 | (m & 0x3FFu) << 13;
        }
    } else if (e == 31) {
        x = sign | 0x7F800000u | m << 13;
    } else {
        x = sign | (e + 112) << 23 | m << 13;
    }
    float f;
    memcpy(&f, &x, 4);
    return f;
}
