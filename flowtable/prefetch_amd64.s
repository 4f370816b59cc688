//go:build !purego

#include "textflag.h"

// PREFETCH_EACH issues PREFETCHT0 for base + v<<shift, for each uint32 v
// of the slice at offs (n of them), and returns 0.
#define PREFETCH_EACH(base, offs, n, shift) \
	MOVQ base, AX; \
	MOVQ offs, BX; \
	MOVQ n, CX; \
	TESTQ CX, CX; \
	JEQ done; \
loop: \
	MOVL (BX), DX; \
	SHLQ $shift, DX; \
	PREFETCHT0 (AX)(DX*1); \
	ADDQ $4, BX; \
	DECQ CX; \
	JNE loop; \
done: \
	MOVQ $0, ret+48(FP); \
	RET

// func prefetchIndex(index []uint64, pos []uint32) uint64
TEXT ·prefetchIndex(SB), NOSPLIT, $0-56
	PREFETCH_EACH(index_base+0(FP), pos_base+24(FP), pos_len+32(FP), 3)

// func prefetchSlab(conns []Conn, lines []uint32) uint64
TEXT ·prefetchSlab(SB), NOSPLIT, $0-56
	PREFETCH_EACH(conns_base+0(FP), lines_base+24(FP), lines_len+32(FP), 6)

// func prefetchLinks(links []links, slots []uint32) uint64
TEXT ·prefetchLinks(SB), NOSPLIT, $0-56
	PREFETCH_EACH(links_base+0(FP), slots_base+24(FP), slots_len+32(FP), 4)
