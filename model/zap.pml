/*
 * zap.pml: unmapping and protection (cow/zap.go, cow/vma.go, cow/space.go):
 * privateLeaf, zapSlot, zapLeafLocked, DontNeed (Advise), Close, Protect
 * (changeProtSlot, mkWritableLocked). A zap clears entries (bumping the
 * generation), waits for the writers that may be writing the pages
 * (Synchronize), then drops the references.
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

/* zapLeafLocked: clear entries [lo, hi) of l (locked; Leaf.Clear bumps
 * the generation), then, if a page was cleared, wait for the writer
 * sections that may still be writing it (Synchronize), and only then drop
 * the mappings and references (removeMapping, FolioPut); then unlock, and
 * free the leaf if empty. One atomic sequence, which yields only while
 * Synchronize waits for a writer: what a lockless access could see between
 * the clear and the puts is the cleared entry, as after. The cleared pages
 * wait in z. */
inline zapLeafLocked() {
	atomic {
		d_step {
			i = lo;
			do
			:: i < hi ->
				e = lpte[l*NPG + i];
				if
				:: e != 0 ->
					lpte[l*NPG + i] = 0;
					flushClear(l);
					if :: ISPAGE(e) -> z[i] = e :: else fi
				:: else
				fi;
				zapShadow(sp, i);
				i++
			:: else -> break
			od;
			i = 0; e = 0
		}
		if
		:: z[0] != 0 || z[1] != 0 -> synchronizeWriters()
		:: else
		fi;
		d_step {
			i = 0;
			do
			:: i < NPG ->
				if
				:: z[i] != 0 ->
					f = FOLIOOF(PFNOF(z[i]));
					subMapcount(f, 1, sp);	/* removeMapping */
					folioPut(f, 1);
					z[i] = 0
				:: else
				fi;
				i++
			:: else -> break
			od;
			ok = LEAFEMPTY(l);
			unlockLeaf(l);
			i = 0; f = 0
		}
	}
	if
	:: ok ->
		/* FreeLeafLocked: the slot's leaf, if it maps nothing and has one user */
		atomic {
			!dirL[sp] && (dleaf[sp] == 0 || !lL[dleaf[sp]]) ->
			l = dleaf[sp];
			if
			:: l != 0 && LEAFEMPTY(l) && !SHARED(l) ->
				ldead[l] = true; lusers[l] = 0; dleaf[sp] = 0;
				flushLeaf(l)
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
			atomic {	/* ClearHugeLocked, Synchronize, the put (see zapLeafLocked) */
				dhuge[sp] = 0;
				flushSlot(sp);
				zapShadow(sp, 0);
				zapShadow(sp, 1);
				synchronizeWriters();
				subMapcount(0, 1, sp);	/* FolioSubEntireMapcount */
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

/* Close: exit. The map lock for writing, closed set, quiesce (wpSeq odd,
 * drain GUP-fast and the writers), drain the readers, zap every region. */
inline opClose() {
	lockMapW(sp);
	if
	:: !closed[sp] ->
		atomic {	/* the drains block only while a section is in flight */
			closed[sp] = true;
			alive[sp] = false;
			tracked[sp*NPG] = false;
			tracked[sp*NPG+1] = false;
			wpSeq[sp]++;	/* quiesceLocked */
			/* testhook.Quiescing */
			DRAINED(sp, false) && rdin[sp] == 0
		}
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

/* Protect of pages [lo, hi) to pr (RO or RW): the map lock for writing,
 * the regions changed, the space quiesced (an access in flight is done
 * before the protection is lower). A partial change of a huge entry splits
 * it (splitAtLocked or changeProtSlot). Read-only clears the write bits (and
 * bumps the generation: ChangeProt takes Write away whatever the new
 * protection, so it always does); read-write then makes the AnonExclusive
 * pages writable (mkWritableLocked), which needs no bump. */
inline opProtect(pr_) {
	lockMapW(sp);
	if
	:: closed[sp] -> err = ECLOSED
	:: else ->
		atomic {
			d_step {
				i = lo;
				do
				:: i < hi -> prot[sp*NPG + i] = pr_; i++
				:: else -> break
				od;
				i = 0
			}
			wpSeq[sp]++;	/* quiesceLocked */
			DRAINED(sp, false)
		}
		whole = (lo == 0 && hi == NPG);
		done = false;
		if
		:: dhuge[sp] != 0 ->
			lockDir(sp);
			if
			:: dhuge[sp] != 0 && whole ->
				atomic {
					dhuge[sp] = WRPROT(dhuge[sp]);
					flushSlot(sp);
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
					flushLeaf(l);	/* ChangeProt's */
					unlockLeaf(l);
					i = 0; e = 0
				}
			:: else
			fi
		:: else
		fi;
		d_step { wpSeq[sp]++; done = false; whole = false; l = 0 }	/* unquiesce */
	fi;
	unlockMapW(sp)
}
