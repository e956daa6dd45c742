/*
 * tlb.pml: TLB generations (pte.Leaf.TLBGen, pte.Dir.TLBGen, the pte
 * primitives' flushTLB) and the software TLB's validation (cow/tlb.go).
 *
 * A generation is a counter whose value nobody reads but to compare it
 * with an earlier load: "did it move since". The model keeps exactly that
 * and no counter (which would tell apart states that differ only in how
 * often a generation moved): a thread that loads a generation starts
 * watching it (tw: a leaf id, or SLOTW(s) for space s's huge slot) with
 * tmv false; a bump sets tmv for every thread that watches it.
 *
 * A bump is in the same step as the change it follows: the code bumps after
 * the change, under the same lock, and before anything can be freed, so a
 * reader that loads the old generation and then the new entry either sees
 * the bump at its recheck (and discards), or rechecks before it, having read
 * a page that is still mapped (the change has freed nothing yet): the same
 * outcome as reading after the bump.
 */

byte tw[NTHR];		/* the generation each thread watches: 0 none */
bool tmv[NTHR];		/* it moved since the thread loaded it */

#define SLOTW(s_)	(NLEAF + (s_))

/* flushTLB of leaf l_ (Leaf.flushTLB) or of space s_'s slot (Dir.flushTLB). */
#define FLUSHW(w_) \
	tmv[0] = (tmv[0] || tw[0] == (w_)); \
	tmv[1] = (tmv[1] || tw[1] == (w_)); \
	tmv[2] = (tmv[2] || tw[2] == (w_))
#define flushLeaf(l_)	FLUSHW(l_)
#define flushSlot(s_)	FLUSHW(SLOTW(s_))

/* Leaf.Clear's bump, which NO_CLEAR_FLUSH removes. */
#define flushClear(l_) \
	if \
	:: !MUT(NO_CLEAR_FLUSH) -> flushLeaf(l_) \
	:: else \
	fi

/* Stop watching (the access is over; fill starts watching). */
inline unwatch() {
	tw[me] = 0; tmv[me] = false
}
