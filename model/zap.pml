/*
 * zap.pml: unmapping and protection (cow/zap.go, cow/vma.go, cow/space.go):
 * privateLeaf, zapSlot, zapLeafLocked, DontNeed (Advise), Close, Protect
 * (changeProtSlot, mkWritableLocked).
 */

/* privateLeaf(zap_): the slot's leaf, locked and private to this space (l),
 * or l = 0: no leaf, or (zap_ of the whole slot) the shared leaf was
 * dropped. A shared leaf is copied first. */
inline privateLeaf(zap_) {
	do
	:: l = dleaf[sp];
		if
		:: l == 0 -> break
		:: else ->
			if
			:: SHARED(l) ->
				ok = false;
				if
				:: (zap_) && whole -> dropSharedLeaf(l)
				:: else
				fi;
				if
				:: ok -> l = 0; break
				:: else -> unshareLeaf(l)
				fi
			:: else ->
				atomic {
					relock(l, mine);
					if
					:: mine && !SHARED(l) -> ok = true
					:: else -> ok = false; unlockLeaf(l)
					fi
				}
				if
				:: ok -> break
				:: else
				fi
			fi
		fi
	od;
	ok = false
}

/* zapLeafLocked: clear entries [lo, hi) of l (locked), dropping their
 * mappings and references; then unlock, and free the leaf if empty. */
inline zapLeafLocked() {
	d_step {
		i = lo;
		do
		:: i < hi ->
			e = lpte[l*NPG + i];
			lpte[l*NPG + i] = 0;
			if
			:: ISPAGE(e) ->
				f = FOLIOOF(PFNOF(e));
				subMapcount(f, 1, sp);
				folioPut(f, 1)
			:: else
			fi;
			zapShadow(sp, i);
			i++
		:: else -> break
		od;
		ok = LEAFEMPTY(l);
		unlockLeaf(l);
		i = 0; e = 0; f = 0
	}
	if
	:: ok ->
		/* FreeLeafLocked: the slot's leaf, if it maps nothing and has one user */
		atomic {
			!dirL[sp] && (dleaf[sp] == 0 || !lL[dleaf[sp]]) ->
			l = dleaf[sp];
			if
			:: l != 0 && LEAFEMPTY(l) && !SHARED(l) -> ldead[l] = true; lusers[l] = 0; dleaf[sp] = 0
			:: else
			fi
		}
	:: else
	fi;
	ok = false
}

/* zapSlot: unmap pages [lo, hi) of the slot. */
inline zapSlot() {
	whole = (lo == 0 && hi == NPG);
	done = false;
	if
	:: dhuge[sp] != 0 ->
		lockDir(sp);
		if
		:: dhuge[sp] != 0 && whole ->
			atomic {
				dhuge[sp] = 0;
				subMapcount(0, 1, sp);	/* FolioSubEntireMapcount */
				zapShadow(sp, 0);
				zapShadow(sp, 1);
				folioPut(0, 1);
				unlockDir(sp)
			}
			done = true
		:: dhuge[sp] != 0 && !whole -> splitHugeLocked(); unlockDir(sp)
		:: else -> unlockDir(sp)
		fi
	:: else
	fi;
	if
	:: !done ->
		privateLeaf(true);
		if
		:: l != 0 -> zapLeafLocked()
		:: else
		fi
	:: else
	fi;
	done = false; whole = false; l = 0
}

/* Advise(DontNeed) of pages [lo, hi): under the map lock for reading. */
inline opDontNeed() {
	lockMapR(sp);
	if
	:: closed[sp] -> err = ECLOSED
	:: else -> CALL_ZAP(1)
	fi;
	unlockMapR(sp)
}

/* Close: exit. The map lock for writing, closed set, quiesce, zap every
 * region. */
inline opClose() {
	lockMapW(sp);
	if
	:: !closed[sp] ->
		atomic {
			closed[sp] = true;
			alive[sp] = false;
			tracked[sp*NPG] = false;
			tracked[sp*NPG+1] = false;
			wpSeq[sp]++
		}
		/* testhook.Quiescing */
		inflight[sp] == 0;
		if
		:: prot[sp*NPG] == prot[sp*NPG+1] -> lo = 0; hi = NPG; CALL_ZAP(2)
		:: else -> lo = 0; hi = 1; CALL_ZAP(3); lo = 1; hi = 2; CALL_ZAP(4)
		fi;
		wpSeq[sp]++
	:: else
	fi;
	lo = 0; hi = 0;
	unlockMapW(sp)
}

/* Protect of pages [lo, hi) to pr (RO or RW): the map lock for writing.
 * A partial change of a huge entry splits it (splitAtLocked or
 * changeProtSlot). Read-only clears the write bits; read-write then makes
 * the AnonExclusive pages writable (mkWritableLocked). */
inline opProtect(pr_) {
	lockMapW(sp);
	if
	:: closed[sp] -> err = ECLOSED
	:: else ->
		i = lo;
		do
		:: i < hi -> prot[sp*NPG + i] = pr_; i++
		:: else -> break
		od;
		i = 0;
		whole = (lo == 0 && hi == NPG);
		done = false;
		if
		:: dhuge[sp] != 0 ->
			lockDir(sp);
			if
			:: dhuge[sp] != 0 && whole ->
				atomic {
					dhuge[sp] = WRPROT(dhuge[sp]);
					if
					:: (pr_) == RW && excl[0] && excl[1] -> dhuge[sp] = dhuge[sp] | WB
					:: else
					fi;
					unlockDir(sp)
				}
				done = true
			:: dhuge[sp] != 0 && !whole -> splitHugeLocked(); unlockDir(sp)
			:: else -> unlockDir(sp)
			fi
		:: else
		fi;
		if
		:: !done ->
			privateLeaf(false);
			if
			:: l != 0 ->
				atomic {
					i = lo;
					do
					:: i < hi ->
						e = lpte[l*NPG + i];
						if
						:: e != 0 ->
							e = WRPROT(e);
							if
							:: (pr_) == RW && ISPAGE(e) && excl[PFNOF(e)] -> e = e | WB
							:: else
							fi;
							lpte[l*NPG + i] = e
						:: else
						fi;
						i++
					:: else -> break
					od;
					unlockLeaf(l);
					i = 0; e = 0
				}
			:: else
			fi
		:: else
		fi;
		done = false; whole = false; l = 0
	fi;
	unlockMapW(sp)
}
