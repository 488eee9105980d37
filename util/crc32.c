/* crc32.c - CRC-32 (IEEE 802.3, the zlib/PNG/zip polynomial); see crc32.h. */
#include "crc32.h"

static uint32_t rd32(const uint8_t *p) { return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24; }

/* CRC-32 with the reflected polynomial 0xEDB88320. Short inputs go four bits at a time
 * through a constant 16-entry table; long ones (storages) four bytes at a time through
 * "slicing-by-4" tables built on the stack for the call (a few microseconds, and nothing
 * shared between threads). t[0] is the classic byte table; t[k][n] is the CRC of byte n
 * followed by k zero bytes, so four table lookups advance the CRC by four bytes. */
static void crc_tables(uint32_t t[4][256]) {
    for (uint32_t n = 0; n < 256; n++) {
        uint32_t c = n;
        for (int k = 0; k < 8; k++) c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
        t[0][n] = c;
    }
    for (uint32_t n = 0; n < 256; n++)
        for (int k = 1; k < 4; k++) t[k][n] = t[0][t[k - 1][n] & 0xFF] ^ (t[k - 1][n] >> 8);
}

uint32_t bzn_crc32_update(uint32_t crc, const void *data, size_t len) {
    static const uint32_t nibble[16] = {
        0x00000000u, 0x1DB71064u, 0x3B6E20C8u, 0x26D930ACu, 0x76DC4190u, 0x6B6B51F4u,
        0x4DB26158u, 0x5005713Cu, 0xEDB88320u, 0xF00F9344u, 0xD6D6A3E8u, 0xCB61B38Cu,
        0x9B64C2B0u, 0x86D3D2D4u, 0xA00AE278u, 0xBDBDF21Cu};
    const uint8_t *p = data;
    crc = ~crc;
    if (len >= 4096) {
        uint32_t t[4][256];
        crc_tables(t);
        for (; len >= 4; p += 4, len -= 4) {
            crc ^= rd32(p);
            crc = t[3][crc & 0xFF] ^ t[2][(crc >> 8) & 0xFF] ^ t[1][(crc >> 16) & 0xFF] ^ t[0][crc >> 24];
        }
    }
    for (size_t i = 0; i < len; i++) {
        crc ^= p[i];
        crc = (crc >> 4) ^ nibble[crc & 15];
        crc = (crc >> 4) ^ nibble[crc & 15];
    }
    return ~crc;
}

uint32_t bzn_crc32(const void *data, size_t n) { return bzn_crc32_update(0, data, n); }
