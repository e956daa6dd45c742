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

// func StoreRelaxed32(p *uint32, v uint32)
TEXT ·StoreRelaxed32(SB), NOSPLIT, $0-12
	MOVD p+0(FP), R0
	MOVWU v+8(FP), R1
	MOVW R1, (R0)
	RET

// func StoreRelease32(p *uint32, v uint32)
TEXT ·StoreRelease32(SB), NOSPLIT, $0-12
	MOVD p+0(FP), R0
	MOVWU v+8(FP), R1
	STLRW R1, (R0)
	RET
