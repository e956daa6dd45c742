/*
 * fork.pml: Fork (cow/fork.go): the map lock for writing, wpSeq odd, the
 * drain of GUP-fast's and the writers' sections (quiesceLocked; readers go
 * on), then copyRange: a huge entry is shared
 * (copyHuge) unless F is pinned with exclusive pages, a leaf covering the
 * slot inside one region is shared (shareLeaf) unless it may hold a pinned
 * page, anything else is copied entry by entry (copyLeaf): shared
 * write-protected with AnonExclusive cleared, or, for an exclusive page of
 * a pinned folio, copied for the child now (copyPinnedPage). The child is
 * invisible until Fork returns, so its side of each step needs no lock.
 */

/* copyHuge: shares the huge entry (ok), or splits it (ok false) when F is
 * pinned and has exclusive pages: the PTE path then copies them. */
inline copyHuge() {
	lockDir(P);
	h = dhuge[P];
	ok = (MUT(NO_FORK_COPY_PINNED) || !(pinc[0] > 0 && (excl[0] || excl[1])));
	if
	:: !ok -> splitHugeLocked(); unlockDir(P)
	:: else ->
		/* testhook.ForkAfterPinCheck */
		atomic {
			folioGet(0, 1);
			addMapcount(0, 1, C);	/* FolioAddEntireMapcount */
			excl[0] = false; excl[1] = false;
			dhuge[P] = WRPROT(dhuge[P]);
			flushSlot(P);	/* WrProtectHugeLocked's */
			dhuge[C] = WRPROT(h);
			trackChild(0);
			trackChild(1);
			unlockDir(P)
		}
	fi;
	h = 0
}

/* copyPinnedPage: the child gets a copy of exclusive page pfn now; the
 * parent keeps its entry. The copy and the child's entry are one step: the
 * child is invisible, so the step commutes with everything but the copy's
 * read of the page, which it contains. */
inline copyPinnedPage(i_) {
	allocFolio(0, nf);
	if
	:: nf == 255 -> err = ENOMEM
	:: else ->
		atomic {
			np = HEADOF(nf);
			data[np] = data[pfn];
			addMapcount(nf, 1, C);
			excl[np] = true;
			lpte[l2*NPG + (i_)] = MKPTE(np, prot[C*NPG + (i_)] == RW);
			trackChild(i_)
		}
	fi;
	d_step { nf = 0; np = 0 }
}

/* copyLeaf: entries [lo, hi) of the parent's leaf l into the child's leaf
 * l2 (copy_pte_range). The source PTL is held throughout (lL); the pin
 * check and the share of each entry are separate steps (ForkAfterPinCheck
 * lies between). */
inline copyLeaf() {
	atomic {
		l2 = dleaf[C];
		if
		:: l2 == 0 -> newLeaf(C, l2); dleaf[C] = l2
		:: else
		fi
	}
	atomic { !lL[l] -> lL[l] = true }
	i = lo;
	do
	:: i < hi && err == 0 ->
		e = lpte[l*NPG + i];
		if
		:: e == 0 -> trackChild(i)
		:: e == ZPTE -> atomic { lpte[l2*NPG + i] = ZPTE; trackChild(i) }
		:: else ->
			pfn = PFNOF(e); f = FOLIOOF(pfn);
			ok = (MUT(NO_FORK_COPY_PINNED) || !(pinc[f] > 0 && excl[pfn]));
			if
			:: ok ->
				/* testhook.ForkAfterPinCheck; shareBatch */
				atomic {
					folioGet(f, 1);
					addMapcount(f, 1, C);
					excl[pfn] = false;
					lpte[l*NPG + i] = WRPROT(lpte[l*NPG + i]);
					flushLeaf(l);	/* CopyPTEs' WrProtect */
					lpte[l2*NPG + i] = WRPROT(lpte[l*NPG + i]);
					trackChild(i)
				}
			:: else -> copyPinnedPage(i)
			fi
		fi;
		i++
	:: else -> break
	od;
	unlockLeaf(l);
	d_step { i = 0; e = 0; pfn = 0; f = 0; l2 = 0 }
}

/* The child's half-built mappings after a failed copy: Fork closes the
 * child (it has no users yet, so this is a plain zap). */
inline forkUndo() {
	atomic {
		l2 = dleaf[C];
		if
		:: l2 != 0 ->
			gn = 0;
			do
			:: gn < NPG ->
				if
				:: ISPAGE(lpte[l2*NPG + gn]) ->
					subMapcount(FOLIOOF(PFNOF(lpte[l2*NPG + gn])), 1, C);
					f = FOLIOOF(PFNOF(lpte[l2*NPG + gn]));
					lpte[l2*NPG + gn] = 0;
					folioPut(f, 1)
				:: else -> lpte[l2*NPG + gn] = 0
				fi;
				gn++
			:: else -> break
			od;
			lusers[l2] = 0; ldead[l2] = true; dleaf[C] = 0
		:: else
		fi;
		closed[C] = true; alive[C] = false;
		tracked[C*NPG] = false; tracked[C*NPG+1] = false;
		l2 = 0; f = 0; gn = 0
	}
}

/* Fork, run by a parent thread. */
inline opFork() {
	lockMapW(P);
	if
	:: closed[P] -> err = ECLOSED
	:: else ->
		atomic {	/* the drain blocks only while a section is in flight */
			alive[C] = true;
			prot[C*NPG] = prot[P*NPG];
			prot[C*NPG+1] = prot[P*NPG+1];
			wpSeq[P]++;	/* quiesceLocked: odd */
			/* testhook.Quiescing */
			DRAINED(P, true)	/* inflight.Drain, writers.Drain */
		}
		/* testhook.ForkBeforeCopy */
		if
		:: prot[P*NPG] == prot[P*NPG+1] ->	/* one region over the slot */
			if
			:: dhuge[P] != 0 -> copyHuge()
			:: else -> ok = false
			fi;
			if
			:: !ok && dleaf[P] != 0 ->
				l = dleaf[P];
				shareLeaf(l);
				if
				:: !ok -> lo = 0; hi = 2; copyLeaf()
				:: else
				fi
			:: else
			fi
		:: else ->	/* two regions: no huge entry, each half copied */
			if
			:: dleaf[P] != 0 ->
				l = dleaf[P];
				lo = 0; hi = 1; copyLeaf();
				if
				:: err == 0 -> lo = 1; hi = 2; copyLeaf()
				:: else
				fi
			:: else
			fi
		fi;
		/* what the child does not map reads zero, as the parent's does */
		atomic {
			if :: !tracked[C*NPG] -> trackChild(0) :: else fi;
			if :: !tracked[C*NPG+1] -> trackChild(1) :: else fi
		}
		wpSeq[P]++;	/* unquiesce */
		if
		:: err != 0 -> forkUndo()
		:: else
		fi;
		l = 0; lo = 0; hi = 0; ok = false
	fi;
	unlockMapW(P);
	forked = true
}
