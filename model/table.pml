/*
 * table.pml: leaves and locks (pte/table.go, the PTL, the directory lock,
 * the map lock). A critical section whose writes no lockless reader can
 * observe half-done is one atomic step guarded by its locks being free;
 * sections that must interleave with lockless readers take the lock
 * variables explicitly.
 */

inline lockMapR(s_)	{ atomic { !mapW[s_] -> mapR[s_]++ } }
inline unlockMapR(s_)	{ mapR[s_]-- }
inline lockMapW(s_)	{ atomic { !mapW[s_] && mapR[s_] == 0 -> mapW[s_] = true } }
inline unlockMapW(s_)	{ mapW[s_] = false }
inline lockDir(s_)	{ atomic { !dirL[s_] -> dirL[s_] = true } }
inline unlockDir(s_)	{ dirL[s_] = false }
inline unlockLeaf(l_)	{ lL[l_] = false }

/* relock: take l's PTL and report whether it is still the slot's leaf. */
inline relock(l_, mine_) {
	atomic {
		!lL[l_] -> lL[l_] = true;
		mine_ = !ldead[l_] && dleaf[sp] == (l_)
	}
}

/* NewLeaf: an empty leaf whose only user is s_. */
inline newLeaf(s_, l_) {
	assert(nleaf < NLEAF);	/* a bound of the model, not of the code */
	l_ = nleaf;
	nleaf++;
	lusers[l_] = 1 << (s_);
	lacct[l_] = s_
}

/* moveAccounting: l_'s folio mappings move from space from_ to to_. */
inline moveAccounting(l_, from_, to_) {
	d_step {
	gj = 0;
	do
	:: gj < NPG ->
		if
		:: ISPAGE(lpte[(l_)*NPG + gj]) ->
			addMapcount(FOLIOOF(PFNOF(lpte[(l_)*NPG + gj])), 1, to_);
			subMapcount(FOLIOOF(PFNOF(lpte[(l_)*NPG + gj])), 1, from_)
		:: else
		fi;
		gj++
	:: else -> break
	od;
	gj = 0
	}
}

/* removeUser (ReplaceLeafLocked, UnlinkLeafLocked): s_ stops using l_;
 * if it was the accounting user, the accounting moves to the other. */
inline removeUser(l_, s_) {
	lusers[l_] = lusers[l_] & ~(1 << (s_));
	if
	:: lacct[l_] == (s_) && lusers[l_] != 0 ->
		lacct[l_] = 1 - (s_);
		moveAccounting(l_, s_, 1 - (s_))
	:: else
	fi
}

#define LEAFEMPTY(l_)	(lpte[(l_)*NPG] == 0 && lpte[(l_)*NPG+1] == 0)
