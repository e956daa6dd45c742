/*
 * sections.pml: the lockless sections of a space (internal/sections, the
 * counters of cow.Space) and the two ways to wait for them: quiesceLocked's
 * Drain (wpSeq odd first, so new sections back out) and the zap's
 * Synchronize (SRCU: only the sections that entered before it).
 *
 *	inflight   GUP-fast (BeginFast ... End), which holds references
 *	writers    the reference-free writes (WriteAt, the Accessor's stores)
 *	readers    Space.ReadAt's seqlock reads; only Close drains them
 */

byte inflight[NSP];	/* s.inflight: GUP-fast sections in flight */
byte wcnt[NSP*2];	/* s.writers: sections in flight, by generation */
bit wgen[NSP];		/* the generation new writer sections count in */
bool syncL[NSP];	/* Counter.syncMu: one Synchronize at a time */
byte rdin[NSP];		/* s.readers: seqlock reads in flight */

/*
 * Counter.Enter for a writer: count the section in the current generation.
 * The code's load, add and recheck (retrying if a Synchronize flipped the
 * generation in between) take effect at the recheck that succeeds, as this
 * one step does; the transient count of a failed try only makes a
 * Synchronize wait a moment longer. wg_ is the generation, for the Exit.
 */
inline enterWriter(wg_) {
	wg_ = wgen[sp];
	wcnt[sp*2 + wg_]++
}

#define NOWRITERS(s_)	(wcnt[(s_)*2] == 0 && wcnt[(s_)*2 + 1] == 0)

/* With no section in flight and no Synchronize waiting, which generation
 * is current makes no difference: the model resets it to 0, so that states
 * that differ only in how often a Synchronize flipped it are one state. */
#define CANONGEN(s_) \
	if \
	:: NOWRITERS(s_) && !syncL[s_] -> wgen[s_] = 0 \
	:: else \
	fi

inline exitWriter(wg_) {
	wcnt[sp*2 + wg_]--;
	CANONGEN(sp);
	wg_ = 0
}

/*
 * quiesceLocked's drains (Fork, Close, Protect): GUP-fast's sections and the
 * writers'. wpSeq is odd already, so a section that enters now backs out:
 * one wait for both is the code's two waits one after the other, but for a
 * section that enters and backs out in between, which changes nothing.
 * The mutants: NO_FORK_DRAIN drops both (Fork only), NO_GUP_DRAIN the
 * first.
 */
#define DRAINED(s_, fork_) \
	(((fork_) && MUT(NO_FORK_DRAIN)) || \
	 ((inflight[s_] == 0 || ((fork_) && MUT(NO_GUP_DRAIN))) && NOWRITERS(s_)))

/*
 * Synchronize of this space's writers (sections.Counter.Synchronize):
 * flip the generation, then wait until the old one is empty. Sections that
 * enter meanwhile count in the new generation and are not waited for.
 * Called between a zap's clearing of entries and the puts of their
 * references (with the PTL or the directory lock held, which no writer
 * section takes), inside the zap's atomic sequence: if a writer of the old
 * generation is in flight, the wait blocks and others run until it exits;
 * if none is, the zap goes on in the same step, which only leaves out
 * interleavings where another thread acts between the flip and the check
 * without changing what either sees. NO_GRACE_PERIOD waits for nothing.
 * Call inside atomic (not d_step: it may block).
 */
inline synchronizeWriters() {
	!syncL[sp] -> syncL[sp] = true;
	sg = wgen[sp];
	wgen[sp] = 1 - sg;
	(MUT(NO_GRACE_PERIOD) || wcnt[sp*2 + sg] == 0);
	syncL[sp] = false;
	CANONGEN(sp);
	sg = 0
}
