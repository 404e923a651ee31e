/*  crc32c.h: CRC-32C (Castagnoli), to tell a torn or damaged journal record
 *  from a whole one. */
#ifndef TC_CRC32C_H
#define TC_CRC32C_H

#include <stddef.h>
#include <stdint.h>

/*  CRC-32C of len bytes, continuing from crc (start with 0). */
uint32_t crc32c(uint32_t crc, const void *data, size_t len);

#endif
