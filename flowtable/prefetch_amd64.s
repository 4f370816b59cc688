//go:build !purego

#include "textflag.h"

// func prefetchIndex(index []uint64, pos []uint32) uint64
TEXT ·prefetchIndex(SB), NOSPLIT, $0-56
	MOVQ index_base+0(FP), AX
	MOVQ pos_base+24(FP), BX
	MOVQ pos_len+32(FP), CX
	TESTQ CX, CX
	JEQ done
loop:
	MOVL (BX), DX
	PREFETCHT0 (AX)(DX*8)
	ADDQ $4, BX
	DECQ CX
	JNE loop
done:
	MOVQ $0, ret+48(FP)
	RET

// func prefetchSlab(conns []Conn, lines []uint32) uint64
TEXT ·prefetchSlab(SB), NOSPLIT, $0-56
	MOVQ conns_base+0(FP), AX
	MOVQ lines_base+24(FP), BX
	MOVQ lines_len+32(FP), CX
	TESTQ CX, CX
	JEQ done
loop:
	MOVL (BX), DX
	SHLQ $6, DX
	PREFETCHT0 (AX)(DX*1)
	ADDQ $4, BX
	DECQ CX
	JNE loop
done:
	MOVQ $0, ret+48(FP)
	RET
