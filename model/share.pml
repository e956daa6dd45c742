/*
 * share.pml: on-demand fork's shared leaves (cow/share.go): unshareLeaf,
 * dropSharedLeaf with wrProtectLeft, and shareLeaf. unshareLeaf and
 * dropSharedLeaf run under the directory lock and the leaf's PTL and are
 * one step each: the only lockless users of a shared leaf are readers
 * (GrabLockless refuses any want through a shared leaf), and a reader does
 * not look at the write bits or AnonExclusive, so none can see them
 * half-done.
 */

/* unshareLeaf(l_): this space takes a private copy of shared leaf l_:
 * the original is write-protected, its pages lose AnonExclusive and gain
 * this space's mappings and references. */
inline unshareLeaf(l_) {
	d_step {
		!dirL[sp] && !lL[l_] ->
		if
		:: dleaf[sp] == (l_) && SHARED(l_) ->
			newLeaf(sp, cp);
			gj = 0;
			do
			:: gj < NPG ->
				lpte[(l_)*NPG + gj] = WRPROT(lpte[(l_)*NPG + gj]);
				if
				:: ISPAGE(lpte[(l_)*NPG + gj]) ->
					folioGet(FOLIOOF(PFNOF(lpte[(l_)*NPG + gj])), 1);
					addMapcount(FOLIOOF(PFNOF(lpte[(l_)*NPG + gj])), 1, sp);
					excl[PFNOF(lpte[(l_)*NPG + gj])] = false
				:: else
				fi;
				lpte[cp*NPG + gj] = lpte[(l_)*NPG + gj];
				gj++
			:: else -> break
			od;
			gj = 0;
			dleaf[sp] = cp;
			removeUser(l_, sp);
			flushLeaf(l_);	/* WrProtect's, and ReplaceLeafLocked's */
			cp = 0
		:: else
		fi
	}
}

/* wrProtectLeft: the leaf this space leaves to the other is left as an
 * eager fork would have: read-only, its pages not exclusive. */
inline wrProtectLeft(l_) {
	gj = 0;
	do
	:: gj < NPG ->
		lpte[(l_)*NPG + gj] = WRPROT(lpte[(l_)*NPG + gj]);
		if
		:: ISPAGE(lpte[(l_)*NPG + gj]) -> excl[PFNOF(lpte[(l_)*NPG + gj])] = false
		:: else
		fi;
		gj++
	:: else -> break
	od;
	gj = 0
}

/* The fix of issue 11 (a): a leaf dropped by Close write-protects the
 * entries of folios whose references exceed their mappings (a Get taken
 * before the Fork), so the remaining user copies instead of writing under
 * the reference; only in a leaf that carries the MaybeHeld hint (every Get
 * sets it before its grab; a split sets it for a Get through the huge
 * entry). */
inline closeWrProtect(l_) {
	gj = (lmh[l_] -> 0 : NPG);
	do
	:: gj < NPG ->
		if
		:: ISPAGE(lpte[(l_)*NPG + gj]) && ref[FOLIOOF(PFNOF(lpte[(l_)*NPG + gj]))] > mapc[FOLIOOF(PFNOF(lpte[(l_)*NPG + gj]))] ->
			lpte[(l_)*NPG + gj] = WRPROT(lpte[(l_)*NPG + gj]);
			excl[PFNOF(lpte[(l_)*NPG + gj])] = false
		:: else
		fi;
		gj++
	:: else -> break
	od;
	gj = 0
}

/* dropSharedLeaf(l_): a zap of the whole slot takes shared leaf l_ out of
 * this space, leaving it to the other. ok reports whether it did. */
inline dropSharedLeaf(l_) {
	d_step {
		!dirL[sp] && !lL[l_] ->
		if
		:: dleaf[sp] == (l_) && SHARED(l_) ->
			if
			:: !closed[sp] && !MUT(NO_WRPROTECT_LEFT) -> wrProtectLeft(l_)
			:: closed[sp] && !MUT(CLOSE_NO_WRPROTECT) -> closeWrProtect(l_)
			:: else	/* the mutants: the leaf is left as it is */
			fi;
			dleaf[sp] = 0;
			removeUser(l_, sp);
			flushLeaf(l_);	/* UnlinkLeafLocked's */
			zapShadow(sp, 0);
			zapShadow(sp, 1);
			ok = true
		:: else -> ok = false
		fi
	}
}

/* leafHasPinned: a folio that l_ maps is pinned. */
#define PINNEDAT(l_, i_)	(ISPAGE(lpte[(l_)*NPG + (i_)]) && pinc[FOLIOOF(PFNOF(lpte[(l_)*NPG + (i_)]))] > 0)

/* shareLeaf(l_): Fork installs the parent's leaf in the child unless it may
 * hold a pinned page (ok false: the caller copies it). Two steps, the check
 * and the install, which only a mutant's lockless pinner can tell apart. */
inline shareLeaf(l_) {
	atomic {
		!lL[l_] ->
		ok = true;
		if
		:: lmp[l_] ->
			if
			:: (PINNEDAT(l_, 0) || PINNEDAT(l_, 1)) && !MUT(NO_FORK_COPY_PINNED) -> ok = false
			:: else -> lmp[l_] = false
			fi
		:: else
		fi;
		if
		:: ok -> lL[l_] = true
		:: else
		fi
	}
	if
	:: ok ->
		atomic {
			dleaf[C] = l_;
			lusers[l_] = lusers[l_] | (1 << C);
			flushLeaf(l_);	/* InstallLeafLocked's: shared now */
			trackChild(0);
			trackChild(1);
			unlockLeaf(l_)
		}
	:: else
	fi
}
