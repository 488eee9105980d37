/* f16.h - IEEE half precision <-> float, round to nearest even (f16 weight files, checkpoints). */
#ifndef BZN_F16_H
#define BZN_F16_H

#include <stdint.h>

uint16_t bzn_f32_to_f16(float f);
float bzn_f16_to_f32(uint16_t h);

#endif
