/*
 * rw.pml: ReadAt and WriteAt of one page (cow/rw.go, cow/tlb.go,
 * cow/accessor.go): the lockless runs, readRun (a seqlock read: no
 * reference, no shared write) and writeRun (a reference-free write in a
 * writer section), and the slow path (the map lock for reading,
 * handleFault, accessLocked: followPage takes a reference under the PTL and
 * the copy happens after it is dropped). wb is the write's bit.
 *
 * Each access fills a TLB entry of its own (Space.ReadAt's one-entry TLB).
 * An Accessor's TLB entry filled by an earlier call and still valid (its
 * generation has not moved) is the same translation a fill would make now:
 * everything that takes a leaf out of a slot, or a huge entry out, bumps
 * the generation. So the model's fresh fill covers the Accessor too.
 */

/* fill (tlb.go): translate the slot (a TLB refill) and load its
 * generation, which tw then watches; ok false: the slot maps nothing (the
 * caller faults). One step: the code loads the slot's huge entry or leaf,
 * then the generation, then rechecks the slot and retries if it changed,
 * so what it returns is the slot as it was at the recheck, with a
 * generation loaded before that; an older generation can only have moved
 * more, which makes the access discard and retry, never accept more. */
inline fill() {
	atomic {
		h = dhuge[sp];
		l = ((h != 0) -> 0 : dleaf[sp]);
		if
		:: h != 0 -> tw[me] = SLOTW(sp); ok = true
		:: h == 0 && l != 0 -> tw[me] = l; ok = true
		:: else -> ok = false
		fi;
		tmv[me] = false
	}
}

/* entry (tlb.go): the entry that maps page a through the translation, read
 * live; 0 if it does not allow the access. A shared leaf is read-only to
 * every user: a write through it gets 0 (NO_SHARED_CHECK writes anyway). */
#define ENTRYOF(w_) \
	((h != 0) -> ((dhuge[sp] != 0) -> dhuge[sp] + a : 0) : \
	(((w_) && SHARED(l) && !MUT(NO_SHARED_CHECK)) -> 0 : lpte[l*NPG + a]))

/* readRun: the seqlock read of page a. ok: val is what it read; else the
 * slow path. Each try: fill, read the entry, copy the page (it may have
 * been freed and reused by the other space meanwhile: the copy reads it all
 * the same), load the generation again; if it moved, clear what was copied
 * and try again, or, as the code does after four tries, take the slow
 * path. */
inline readRun() {
	do
	:: fill();
		if
		:: ok ->
			atomic {	/* entry: live, through the translation */
				e = ENTRYOF(false); h = 0; l = 0;
				if
				:: e == 0 -> ok = false; unwatch()	/* fault */
				:: e == ZPTE -> zero = true; e = 0; unwatch()
				:: else
				fi
			}
			if
			:: !ok || zero -> break
			:: else
			fi;
			/* testhook.LocklessAfterGrab */
			atomic { val = data[PFNOF(e)]; e = 0 }	/* seqlock.Copy */
			atomic {	/* seqlock.Fence; the generation again */
				ok = (!tmv[me] || MUT(NO_SEQ_RECHECK));
				unwatch();
				if
				:: !ok -> val = 0	/* clear(buf[:k]) */
				:: else
				fi
			}
			if
			:: ok -> break
			:: else ->
				if
				:: skip		/* the next try */
				:: break	/* the slow path */
				fi
			fi
		:: else -> break
		fi
	od
}

/* writeRun (and the Accessor's stores, writable): in a writer section with
 * wpSeq even, write page a if the translation maps it writable in a leaf
 * that is not shared, and the generation has not moved since the
 * translation was made (see below). No reference is taken: nothing frees
 * the page until the section ends (a zap waits in Synchronize, Fork and
 * the others drain the writers). The write is one step with the section's
 * Exit: the Exit only lets waiters go on. The write must land in a page
 * that is allocated (property 5) and that the other space does not map
 * (property 1); if its space no longer maps the page there, a zap overtook
 * the write (else the write is lost, property 4).
 *
 * The generation recheck after the entry is read is not in the code yet
 * (NO_WRITE_RECHECK is the code): between the fill and the entry read,
 * this space may take its private copy of a shared leaf (unshareLeaf) or
 * drop it (dropSharedLeaf), and the other space, now the leaf's only user,
 * copy-on-write a page into it: the write then finds the leaf not shared
 * and the entry writable, and lands in the other space's page. The leaf
 * left the slot with a bump (ReplaceLeafLocked, UnlinkLeafLocked) before
 * the other space could change it, so the recheck sees it. */
inline writeRun() {
	fill();
	if
	:: ok ->
		atomic { e = ENTRYOF(true); h = 0; l = 0 }	/* entry */
		atomic {	/* the generation again */
			ok = (ISPAGE(e) && WRITABLE(e) && (!tmv[me] || MUT(NO_WRITE_RECHECK)));
			unwatch();
			if
			:: !ok -> e = 0; exitWriter(wg)
			:: else
			fi
		}
	:: else -> exitWriter(wg)
	fi;
	if
	:: ok ->
		/* testhook.LocklessAfterGrab, testhook.LocklessAfterRecheck */
		atomic {
			pfn = PFNOF(e);
			assert(falloc[FOLIOOF(pfn)]);	/* not a freed page */
			assert(!MAPS(1 - sp, 0, pfn) && !MAPS(1 - sp, 1, pfn));	/* nor the other space's */
			data[pfn] = data[pfn] | wb;
			if
			:: MAPS(sp, a, pfn) -> setShadow(sp, a, shadow[sp*NPG + a] | wb)
			:: else -> assert(zaps[sp*NPG + a] != ep0)
			fi;
			exitWriter(wg);
			pfn = 0; e = 0
		}
	:: else
	fi
}

/* The copy of accessLocked, through the reference followPage took. */
inline copyLocked() {
	atomic {
		assert(falloc[f]);
		if
		:: fw ->
			data[pfn] = data[pfn] | wb;
			if
			:: MAPS(sp, a, pfn) -> setShadow(sp, a, shadow[sp*NPG + a] | wb)
			:: else -> assert(zaps[sp*NPG + a] != ep0)
			fi
		:: else -> val = data[pfn]
		fi
	}
	folioPutT(f, 1, true)
}

/* followPage + the copy of accessLocked: ok false if the entry does not
 * allow the access (the caller faults again). */
inline accessLocked() {
	ok = false; zero = false;
	if
	:: dhuge[sp] != 0 ->
		atomic {
			!dirL[sp] ->
			h = dhuge[sp];
			if
			:: h != 0 && (!fw || WRITABLE(h)) ->
				pfn = PFNOF(h + a); f = 0;
				folioGet(0, 1); tref[me] = 1; ok = true
			:: else
			fi
		}
	:: else ->
		l = dleaf[sp];
		if
		:: l != 0 ->
			atomic {
				relock(l, mine);
				e = lpte[l*NPG + a];
				if
				:: !mine || e == 0 || (fw && (!WRITABLE(e) || SHARED(l))) -> skip
				:: else ->
					ok = true;
					if
					:: e == ZPTE -> zero = true
					:: else ->
						pfn = PFNOF(e); f = FOLIOOF(pfn);
						folioGet(f, 1); tref[me] = f + 1
					fi
				fi;
				unlockLeaf(l)
			}
		:: else
		fi
	fi;
	if
	:: ok && zero -> val = 0
	:: ok && !zero -> copyLocked()
	:: else
	fi;
	d_step { h = 0; l = 0; e = 0 }
}

/* ReadAt (fw false) or WriteAt (fw true) of page a; rsec: the read runs in
 * a reader section (Space.ReadAt, which Close waits for), or in none (an
 * Accessor's ReadAt or LoadUint64, whose open Accessor keeps the arena). */
inline opAccess() {
	atomic {	/* the ghost reference point; accessFast's Enter and checks */
		r0 = shadow[sp*NPG + a];
		ep0 = zaps[sp*NPG + a];
		/* a section that backs out leaves in the same step: it
		 * changed nothing, and no wait needs to see it */
		if
		:: fw ->
			enterWriter(wg);
			ok = !closed[sp] && (wpSeq[sp] & 1) == 0;
			if :: !ok -> exitWriter(wg) :: else fi
		:: !fw && rsec -> ok = !closed[sp]; if :: ok -> rdin[sp]++ :: else fi
		:: else -> ok = true
		fi;
		stuck = !ok
	}
	if
	:: ok && fw -> writeRun(); stuck = !ok
	:: ok && !fw ->
		readRun();
		atomic {	/* (not a d_step: readRun breaks to it) */
			stuck = !ok;
			if :: rsec -> rdin[sp]-- :: else fi	/* Exit */
		}
	:: else
	fi;
	if
	:: stuck ->
		lockMapR(sp);
		if
		:: closed[sp] -> err = ECLOSED
		:: else ->
			do
			:: CALL_FAULT(1);
				if
				:: err != 0 || applied -> break
				:: else ->
					accessLocked();
					if
					:: ok -> break
					:: else
					fi
				fi
			od
		fi;
		unlockMapR(sp)
	:: else
	fi;
	d_step {
		if
		:: !fw && err == 0 ->
			/* a read returns only what this space's memory held
			 * (isolation), and, unless a zap overtook it, every
			 * write that preceded it */
			assert((val & ~seen[sp]) == 0);
			assert(zaps[sp*NPG + a] != ep0 || (r0 & ~val) == 0)
		:: !fw && err != 0 ->
			assert(val == 0)	/* a discarded copy leaves nothing behind */
		:: else
		fi;
		val = 0; r0 = 0; ep0 = 0; zero = false; ok = false; pfn = 0; f = 0; done = false; applied = false; stuck = false
	}
}
