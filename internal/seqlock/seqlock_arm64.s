#include "textflag.h"

// func Load64(p unsafe.Pointer) uint64
TEXT ·Load64(SB), NOSPLIT, $0-16
	MOVD p+0(FP), R0
	MOVD (R0), R0
	MOVD R0, ret+8(FP)
	RET

// func Fence()
TEXT ·Fence(SB), NOSPLIT, $0-0
	DMB $0x9 // ISHLD: earlier loads complete before later loads and stores
	RET
