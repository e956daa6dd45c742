#include "textflag.h"

// func ntCopy(dst, src unsafe.Pointer, n, skip uintptr)
//
// Copies n bytes (a multiple of 64) from src to dst (16-byte aligned) with
// SSE2 MOVNTDQ, leaving out the 64-byte line at offset skip (skip >= n: no
// line), then SFENCE. The skipped line of dst is prefetched first, so that
// by the end it is in the cache for the caller's ordinary stores.
TEXT ·ntCopy(SB), NOSPLIT, $0-32
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ n+16(FP), CX
	MOVQ skip+24(FP), DX
	CMPQ DX, CX
	JAE  loop_start
	PREFETCHT0 (DI)(DX*1)
loop_start:
	ADDQ DI, DX // the skipped line's address
	ADDQ DI, CX // the end
loop:
	CMPQ DI, CX
	JAE  done
	CMPQ DI, DX
	JEQ  next
	MOVOU 0(SI), X0
	MOVOU 16(SI), X1
	MOVOU 32(SI), X2
	MOVOU 48(SI), X3
	MOVNTO X0, 0(DI)
	MOVNTO X1, 16(DI)
	MOVNTO X2, 32(DI)
	MOVNTO X3, 48(DI)
next:
	ADDQ $64, SI
	ADDQ $64, DI
	JMP  loop
done:
	SFENCE
	RET
