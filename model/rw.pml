/*
 * rw.pml: ReadAt and WriteAt of one page (cow/rw.go): accessFast (a
 * lockless section, GrabLockless, the copy, the put) and accessSlow (the
 * map lock for reading, handleFault, accessLocked: followPage takes a
 * reference under the PTL and the copy happens after it is dropped). wb is
 * the write's bit. A read checks what it returns.
 */

/* The copy to or from the page grabbed: one step. A write that finds the
 * page no longer mapped at a was overtaken by a zap of that page (the only
 * way an exclusive, writable page stops being mapped while referenced):
 * anything else is a lost write (property 4). */
inline copyRunStep() {
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
	:: ok && !zero -> copyRunStep()
	:: else
	fi;
	d_step { h = 0; l = 0; e = 0 }
}

/* ReadAt (fw false) or WriteAt (fw true) of page a. */
inline opAccess() {
	atomic {	/* the ghost reference point, and enter + the wpSeq check */
		r0 = shadow[sp*NPG + a];
		ep0 = zaps[sp*NPG + a];
		inflight[sp]++;
		ok = (wpSeq[sp] & 1) == 0 && !closed[sp]
	}
	stuck = true;
	if
	:: ok ->
		want = (fw -> WW : 0);
		grabLockless();
		if
		:: ok && zero -> val = 0; stuck = false
		:: ok && !zero -> copyRunStep(); stuck = false
		:: else
		fi;
		want = 0
	:: else
	fi;
	inflight[sp]--;
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
		:: else
		fi;
		val = 0; r0 = 0; ep0 = 0; zero = false; ok = false; pfn = 0; f = 0; done = false; applied = false; stuck = false
	}
}
