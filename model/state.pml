/*
 * state.pml: the state the protocol works on, scaled down to the model's
 * configuration (model/README.md): two spaces (parent P, child C), one
 * directory slot of two pages in each, one folio F of two pages (the PMD
 * order of the model: a huge entry maps it whole), NCOPY order-0 folios
 * for copies, and leaves that are never reused once dead (Go's garbage
 * collector never hands a dead *pte.Leaf out again, so a stale pointer
 * compares unequal).
 */

/*
 * Subroutines: handleFault and zapSlot are long and called from several
 * operations; Promela inlines are expanded at each use, so each is
 * written once in Thread (anonfolio.pml) and called with a return index.
 */
#define CALL_FAULT(n_)	fret = n_; goto HANDLE_FAULT; RETF##n_: skip
#define CALL_ZAP(n_)	zret = n_; goto ZAP_SLOT; RETZ##n_: skip

#define NSP	2	/* spaces */
#define P	0	/* the parent */
#define C	1	/* the child, made by Fork */
#define NPG	2	/* pages in a slot = pages of F */
#ifndef NCOPY
#define NCOPY	3	/* order-0 folios */
#endif
#define NF	(1+NCOPY)	/* folio 0 is F (order 1); folio k>0 is page k+1 */
#define NPAGE	(2+NCOPY)
#ifndef NLEAF
#define NLEAF	7	/* leaf ids 1..NLEAF-1; 0 is nil */
#endif
#define NTHR	3	/* threads; a two-thread scenario leaves the third idle */

/* A PTE (pte.PTE): 0 is none; the low three bits hold pfn+1; WB is the
 * write bit; ZPTE is the shared zero page. Dirty, Young and Cont are left
 * out: no decision of the protocol reads them (SameMapping ignores them). */
#define WB	8
#define ZPTE	16
#define PFNOF(e)	(((e) & 7) - 1)
#define ISPAGE(e)	(((e) & 7) != 0)
#define WRITABLE(e)	(((e) & WB) != 0)
#define MKPTE(p, w)	((p) + 1 + ((w) -> WB : 0))
#define WRPROT(e)	((e) & 23)
#define FOLIOOF(p)	(((p) < 2) -> 0 : (p) - 1)
#define HEADOF(f)	(((f) == 0) -> 0 : (f) + 1)

/* Region protection of each page of each space (regions are per page:
 * Protect of one page splits the region). The model never unmaps. */
#define RO	1
#define RW	2
byte prot[NSP*NPG];

/* Spaces (cow.Space). */
bool closed[NSP];	/* closed, set by Close under the map lock */
byte wpSeq[NSP];	/* write_protect_seq */
byte mapR[NSP];		/* mapLock readers */
bool mapW[NSP];		/* mapLock writer */
bool dirL[NSP];		/* the directory (PMD) lock */
byte dhuge[NSP];	/* the slot's huge entry, or 0 */
byte dleaf[NSP];	/* the slot's leaf id, or 0 */

/* Leaves (pte.Leaf). */
byte lpte[NLEAF*NPG];
byte lusers[NLEAF];	/* bit s set: space s uses it; both: Shared() */
byte lacct[NLEAF];	/* Users()[0]: the space its mappings are accounted to */
bool ldead[NLEAF];
bool lmp[NLEAF];	/* MaybePinned */
bool lmh[NLEAF];	/* MaybeHeld */
bool lL[NLEAF];		/* the PTL */
byte nleaf = 1;
#define SHARED(l)	(lusers[l] == 3)

/* Folios and pages (folio metadata). F's mapcount keeps the owner
 * tracking of CONFIG_MM_ID: with two spaces it is exact, so "maybe mapped
 * shared" is "both spaces map some page of it". */
bool falloc[NF];
byte ref[NF];
byte mapc[NF];
byte mmc[NSP];		/* F's mapcount per space */
byte pinc[NF];
bool excl[NPAGE];	/* AnonExclusive */
short data[NPAGE];	/* the page's contents: the set of writes it holds */
#define FSHARED		(mmc[0] > 0 && mmc[1] > 0)

/* COW copies in flight (copyTable): one slot per thread, folio+1 and a
 * generation bumped each time the slot is taken. */
byte cpF[NTHR];
byte cpG[NTHR];

byte tsp[NTHR];		/* the space each thread runs in */

/*
 * Ghost state: what each space's memory must read, and what threads hold.
 * A page's contents are a set of write bits: bit 0 is the data written
 * before the model starts, each write of the model has its own bit, and a
 * write adds its bit (a partial-page store), so a copy that loses a write
 * shows it.
 */
short shadow[NSP*NPG];	/* what (space, page) reads, per the sequential spec */
bool tracked[NSP*NPG];	/* shadow is live: the space maps the page's address */
short seen[NSP];	/* every bit a space's memory ever held */
byte zaps[NSP*NPG];	/* zaps of (space, page) so far */
bool alive[NSP];
bool forked;		/* Fork returned: the child's threads may run */
byte hold[NTHR];	/* page+1 held by the thread's Pin or Get */
bool holdZero[NTHR];	/* the Get holds the zero page */
bool holdPin[NTHR];
byte holdA[NTHR];
bool holdZap[NTHR];	/* the pinned address was zapped since the pin */
bool holdUser[NTHR];	/* the Pin or Get was returned to its caller, not yet released */
byte tref[NTHR];	/* folio+1 of the thread's in-flight reference */

#define ENTRY(s, a)	((dhuge[s] != 0) -> (dhuge[s] + (a)) : ((dleaf[s] != 0) -> lpte[dleaf[s]*NPG + (a)] : 0))
#define CONTENT(e)	(ISPAGE(e) -> data[PFNOF(e)] : 0)
#define MAPS(s, a, p)	(ISPAGE(ENTRY(s, a)) && PFNOF(ENTRY(s, a)) == (p))

inline setShadow(s_, a_, v_) {
	shadow[(s_)*NPG + (a_)] = v_;
	seen[s_] = seen[s_] | (v_)
}

/* A zap of (space, page): it reads zero from now on. */
inline zapShadow(s_, a_) {
	d_step {
	shadow[(s_)*NPG + (a_)] = 0;
	zaps[(s_)*NPG + (a_)]++;
	gk = 0;
	do
	:: gk < NTHR ->
		if
		:: hold[gk] != 0 && tsp[gk] == (s_) && holdA[gk] == (a_) -> holdZap[gk] = true
		:: else
		fi;
		gk++
	:: else -> break
	od;
	gk = 0
	}
}

/* The child's copy of the parent's (space, page), made by Fork. */
inline trackChild(a_) {
	tracked[C*NPG + (a_)] = true;
	setShadow(C, a_, shadow[P*NPG + (a_)])
}
