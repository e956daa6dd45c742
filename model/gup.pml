/*
 * gup.pml: GUP (cow/gup.go, pin/pin.go): BeginFast, GrabLockless (grab,
 * recheck, undo), Locked.Grab and Locked.Fault (the slow path), hold,
 * undo, Release, and reads and writes through what a Pin or Get holds.
 * want is a set of WW (WantWrite), WX (WantExclusive, WantPin: a pin), WH
 * (WantHold: every Pin and Get). GUP-fast is the only lockless path that
 * takes references: ReadAt and WriteAt no longer do (rw.pml).
 */

#define WW	1
#define WX	2
#define WH	4

#define FNONE		0
#define FREAD		1
#define FWRITE		2
#define FUNSHARE	3
#define FPRIVATE	4

#define ALLOWS(e_, w_)	((e_) != 0 && (((w_) & WW) == 0 || WRITABLE(e_)))
#define MISSING(w_)	((((w_) & WW) != 0) -> FWRITE : FREAD)
/* blocked(e, want, shared, notExclusive) for a present entry */
#define BLOCKED(e_, w_, sh_, nx_) \
	((((w_) & WW) != 0 && (!WRITABLE(e_) || (sh_))) -> FWRITE : \
	((((w_) & WX) != 0 && ((sh_) || (nx_))) -> FUNSHARE : \
	((((w_) & WH) != 0 && (sh_)) -> FPRIVATE : FNONE)))

/* The fix of issue 11 (b): a pin's pincount is taken with its reference,
 * before the entry is rechecked (try_grab_folio(FOLL_PIN), WantPin), so a
 * split that reads the pincount after replacing the huge entry sees it, or
 * the recheck fails. The mutant PIN_AFTER_RECHECK (the code before the
 * fix) adds it in hold, after. */
#define PIN_IN_GRAB	((want & WX) != 0 && !MUT(PIN_AFTER_RECHECK))

/* The hints a walk sets on a leaf before it grabs (SetMaybePinned for a
 * pin, SetMaybeHeld for any reference that will be held), one step. */
inline leafHints(l_) {
	atomic {
		lmp[l_] = (lmp[l_] || (want & WX) != 0);
		lmh[l_] = (lmh[l_] || ((want & WH) != 0 && !MUT(NO_HELD_HINT)))
	}
}

/* Drop the grab: the reference, and the pin taken with it. */
inline ungrab() {
	if
	:: PIN_IN_GRAB -> pinc[f]--
	:: else
	fi;
	folioPutT(f, 1, true)
}

/* GrabLockless(a, want): sets ok; on success pfn and f (a reference
 * taken), or zero for the zero page. Call inside a section. */
inline grabLockless() {
	ok = false; zero = false;
	h = dhuge[sp];
	if
	:: h != 0 ->
		e = h + a;
		if
		:: ALLOWS(e, want) ->
			pfn = PFNOF(e); f = 0;
			folioTryGet(0, ok);
			if
			:: ok && PIN_IN_GRAB -> pinc[0]++
			:: else
			fi;
			/* testhook.LocklessAfterGrab */
			if
			:: ok ->
				atomic {
					if
					:: dhuge[sp] != h || ((want & WX) != 0 && !excl[pfn]) -> ungrab(); ok = false
					:: else -> gep = zaps[sp*NPG + a]
					fi
				}
			:: else
			fi
		:: else
		fi
	:: else ->
		l = dleaf[sp];
		if
		:: l != 0 ->
			atomic {
				e = lpte[l*NPG + a];
				ok = ALLOWS(e, want) && !(want != 0 && SHARED(l))
			}
			if
			:: ok && e == ZPTE ->
				ok = ((want & (WW | WX)) == 0);
				zero = ok
			:: ok && e != ZPTE ->
				pfn = PFNOF(e); f = FOLIOOF(pfn);
				leafHints(l);	/* before the grab */
				folioTryGet(f, ok);
				if
				:: ok && PIN_IN_GRAB -> pinc[f]++
				:: else
				fi;
				/* testhook.LocklessAfterGrab */
				if
				:: ok ->
					/* recheck the entry and the slot (gup_fast's pmd
					 * recheck), then AnonExclusive for a pin */
					atomic {
						if
						:: lpte[l*NPG + a] != e || dleaf[sp] != l || ((want & WX) != 0 && !excl[pfn]) -> ungrab(); ok = false
						:: else -> gep = zaps[sp*NPG + a]
						fi
					}
				:: else
				fi
			:: else
			fi
		:: else
		fi
	fi;
	d_step { h = 0; l = 0; e = 0 }
}

/* Locked.Grab(a, want) under the map lock: need, or (need FNONE) pfn and
 * f grabbed, or zero. One step: the PTL (or directory lock) is held. */
inline lockedGrab() {
	zero = false;
	if
	:: dhuge[sp] != 0 ->
		atomic {
			!dirL[sp] ->
			h = dhuge[sp];
			if
			:: h == 0 -> need = MISSING(want)
			:: else ->
				gep = zaps[sp*NPG + a];
				e = h + a; pfn = PFNOF(e); f = 0;
				need = BLOCKED(e, want, false, (want & WX) != 0 && !excl[pfn]);
				if
				:: need == FNONE ->
					folioGet(0, 1); tref[me] = 1;
					if :: PIN_IN_GRAB -> pinc[0]++ :: else fi
				:: else
				fi
			fi
		}
	:: else ->
		l = dleaf[sp];
		if
		:: l == 0 -> need = MISSING(want)
		:: else ->
			atomic {
				relock(l, mine);
				e = lpte[l*NPG + a];
				if
				:: !mine || e == 0 -> need = MISSING(want)
				:: else ->
					gep = zaps[sp*NPG + a];
					need = BLOCKED(e, want, SHARED(l), (want & WX) != 0 && (e == ZPTE || !excl[PFNOF(e)]));
					if
					:: need == FNONE && e == ZPTE -> zero = true
					:: need == FNONE && e != ZPTE ->
						pfn = PFNOF(e); f = FOLIOOF(pfn);
						lmp[l] = (lmp[l] || (want & WX) != 0);
						lmh[l] = (lmh[l] || ((want & WH) != 0 && !MUT(NO_HELD_HINT)));
						folioGet(f, 1); tref[me] = f + 1;
						if :: PIN_IN_GRAB -> pinc[f]++ :: else fi
					:: else
					fi
				fi;
				unlockLeaf(l)
			}
		fi
	fi;
	d_step { h = 0; l = 0; e = 0 }
}

/* hold: keep the run grabbed (pin.Pages.hold). */
inline holdRun() {
	atomic {
		if
		:: zero -> holdZero[me] = true
		:: else ->
			if :: isPin && MUT(PIN_AFTER_RECHECK) -> pinc[f]++ :: else fi;	/* after the recheck */
			hold[me] = pfn + 1;
			tref[me] = 0
		fi;
		/* a zap since the grab confirmed the entry leaves the pin on a
		 * page no longer mapped, as it should */
		holdPin[me] = isPin; holdA[me] = a; holdZap[me] = (zaps[sp*NPG + a] != gep);
		gep = 0
	}
}

/* undo / Release: drop what is held: a pin's pincount, then its
 * reference (FolioUnpin); a Get's reference. Once its pincount is gone the
 * pin is no longer one (nothing looks for it, nobody writes through it):
 * the ghost holdPin goes with it, and the reference left is counted as a
 * plain one until it goes too. */
inline opRelease() {
	if
	:: hold[me] != 0 ->
		atomic {
			f = FOLIOOF(hold[me] - 1);
			holdUser[me] = false;
			if
			:: holdPin[me] -> pinc[f]--; holdPin[me] = false
			:: else
			fi
		}
		atomic {
			hold[me] = 0;
			folioPut(f, 1)
		}
		f = 0
	:: else
	fi;
	holdZero[me] = false; holdPin[me] = false; holdA[me] = 0; holdZap[me] = false
}

/* Pin (isPin) or Get of page a, read-only or (wr_) for writing: the fast
 * path in a section, the slow path under the map lock. */
inline opTake(wr_) {
	want = WH | ((wr_) -> WW : 0) | (isPin -> WX : 0);
	taken = false; err = 0;
	atomic {	/* BeginFast */
		inflight[sp]++;
		seq = wpSeq[sp];
		ok = ((seq & 1) == 0 || MUT(NO_GUPFAST_SEQ)) && !closed[sp]
	}
	if
	:: ok ->
		grabLockless();
		if
		:: ok -> holdRun(); taken = true
		:: else
		fi;
		if
		:: isPin && taken && wpSeq[sp] != seq && !MUT(NO_GUPFAST_RECHECK | NO_GUPFAST_SEQ) ->
			opRelease(); taken = false	/* !Unchanged: a Fork began */
		:: else
		fi;
		inflight[sp]--	/* End */
	:: else -> inflight[sp]--
	fi;
	if
	:: !taken ->
		/* the slow path */
		lockMapR(sp);
		if
		:: closed[sp] -> err = ECLOSED
		:: else ->
			do
			:: lockedGrab();
				if
				:: need == FNONE -> holdRun(); taken = true; break
				:: else ->
					fw = (need == FWRITE); fu = (need == FUNSHARE); fp = (need == FPRIVATE);
					wb = 0;
					CALL_FAULT(2);
					fw = false; fu = false; fp = false;
					if
					:: err != 0 -> break
					:: else
					fi
				fi
			od
		fi;
		unlockMapR(sp)
	:: else
	fi;
	d_step { holdUser[me] = taken; need = 0; want = 0; seq = 0; zero = false; pfn = 0; f = 0; done = false; applied = false }
}

/* A write through a pin's bytes (DMA into the pinned page). */
inline opPinWrite() {
	atomic {
		if
		:: hold[me] != 0 && holdPin[me] ->
			assert(falloc[FOLIOOF(hold[me] - 1)]);
			data[hold[me] - 1] = data[hold[me] - 1] | wb;
			if
			:: alive[sp] && MAPS(sp, holdA[me], hold[me] - 1) ->
				setShadow(sp, holdA[me], shadow[sp*NPG + holdA[me]] | wb)
			:: else -> assert(holdZap[me] || !alive[sp])	/* else coherence failed */
			fi
		:: else
		fi
	}
}

/* A read through what a Pin or Get holds: it never holds a write that the
 * space it came from never held (snapshot isolation, property 1). */
inline opRefRead() {
	atomic {
		if
		:: hold[me] != 0 ->
			assert(falloc[FOLIOOF(hold[me] - 1)]);
			val = data[hold[me] - 1];
			assert((val & ~seen[sp]) == 0)
		:: else
		fi;
		val = 0
	}
}
