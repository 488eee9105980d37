/* crc32.h - CRC-32 of the IEEE/zlib polynomial: weight files' checksums, zip members. */
#ifndef BZN_CRC32_H
#define BZN_CRC32_H

#include <stddef.h>
#include <stdint.h>

/* CRC-32 of data; _update continues a running CRC (start from 0) */
uint32_t bzn_crc32(const void *data, size_t n);
uint32_t bzn_crc32_update(uint32_t crc, const void *data, size_t len);

#endif
