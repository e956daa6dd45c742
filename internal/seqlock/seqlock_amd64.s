#include "textflag.h"

// func Load64(p unsafe.Pointer) uint64
TEXT ·Load64(SB), NOSPLIT, $0-16
	MOVQ p+0(FP), AX
	MOVQ (AX), AX
	MOVQ AX, ret+8(FP)
	RET

// func StoreRelaxed32(p *uint32, v uint32)
TEXT ·StoreRelaxed32(SB), NOSPLIT, $0-12
	MOVQ p+0(FP), AX
	MOVL v+8(FP), BX
	MOVL BX, (AX)
	RET

// func StoreRelease32(p *uint32, v uint32): x86-64 stores are releases.
TEXT ·StoreRelease32(SB), NOSPLIT, $0-12
	MOVQ p+0(FP), AX
	MOVL v+8(FP), BX
	MOVL BX, (AX)
	RET
