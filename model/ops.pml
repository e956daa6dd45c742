/*
 * ops.pml: the operations a thread of the harness runs, over the inlines
 * that mirror the Go code, and the dispatcher that runs a thread's
 * program: each operation's code appears once. Each write has its own
 * bit: bit 0 is the data the model starts with, bit 1 + me*NOPS + k is
 * operation k of thread me.
 */

#ifndef NOPS
#define NOPS	4
#endif

#define WBIT(k_)	(1 << (1 + me*NOPS + (k_)))

/* Operations. */
#define ONONE		0
#define OWRITE		1	/* WriteAt (or an Accessor's WriteAt, a store) of page a */
#define OREAD		2	/* Space.ReadAt of page a: in a reader section */
#define OAREAD		12	/* an Accessor's ReadAt or LoadUint64 of page a: in none */
#define OPIN		3	/* pin.Pin of page a, pin.Write if wr */
#define OGET		4	/* pin.Get of page a */
#define OPINWRITE	5	/* a write through the pin's Bytes */
#define OREFREAD	6	/* a read through the Pin's or Get's Bytes */
#define ORELEASE	7
#define OFORK		8
#define OCLOSE		9
#define ODONTNEED	10	/* Advise(DontNeed) of pages [lo, hi) */
#define OPROTECT	11	/* Protect of pages [lo, hi) to pr */

/* Every thread-local variable the inlines use. */
#define LOCALS \
	byte gk, gj, gn; \
	byte k, ch, op, pr, fret, zret; \
	bool wr; \
	byte i, a, lo, hi; \
	bool whole; \
	short wb, val, r0; \
	byte ep0, gep; \
	byte e, h, l, l2, cp, pfn, f, nf, np; \
	bool ok, done, mine, fw, fu, fp, fromZero, applied, zero, taken, isPin, stuck, rsec; \
	byte want, need, err, seq; \
	bit wg, sg; \
	byte z[NPG]; \
	byte snapM, nsnap; \
	byte snapG[NTHR]

/* Program helpers: set the operation of step k. */
#define WRITE(a_)	op = OWRITE; a = a_
#define READ(a_)	op = OREAD; a = a_
#define AREAD(a_)	op = OAREAD; a = a_
#define PIN(a_, w_)	op = OPIN; a = a_; wr = w_
#define GET(a_)		op = OGET; a = a_
#define PINWRITE	op = OPINWRITE
#define REFREAD		op = OREFREAD
#define RELEASE		op = ORELEASE
#define FORK		op = OFORK
#define CLOSE		op = OCLOSE
#define DONTNEED(lo_, hi_)	op = ODONTNEED; lo = lo_; hi = hi_
#define PROTECT(lo_, hi_, p_)	op = OPROTECT; lo = lo_; hi = hi_; pr = p_

/* The scenario's program (scenarios.pml) sets op and its arguments for
 * operation k of thread me, given the choice ch the thread made first. */
inline runProgram() {
	k = 0;
	do
	:: k < NOPS ->
		d_step { op = ONONE; PROGRAM };
		if
		:: op == ONONE -> break
		:: op == OWRITE -> fw = true; wb = WBIT(k); opAccess(); fw = false
		:: op == OREAD -> fw = false; wb = 0; rsec = true; opAccess(); rsec = false
		:: op == OAREAD -> fw = false; wb = 0; opAccess()
		:: op == OPIN -> isPin = true; opTake(wr); isPin = false
		:: op == OGET -> isPin = false; opTake(false)
		:: op == OPINWRITE -> wb = WBIT(k); opPinWrite()
		:: op == OREFREAD -> opRefRead()
		:: op == ORELEASE -> opRelease()
		:: op == OFORK -> opFork()
		:: op == OCLOSE -> opClose()
		:: op == ODONTNEED -> opDontNeed()
		:: op == OPROTECT -> opProtect(pr)
		fi;
		d_step { a = 0; lo = 0; hi = 0; pr = 0; wr = false; wb = 0; err = 0; k++ }
	:: else -> break
	od;
	k = 0; ch = 0; op = 0
}

