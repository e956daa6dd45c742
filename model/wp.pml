/*
 * wp.pml: write-protect faults (cow/wp.go, cow/copies.go): doWPPage,
 * mayReuse, wpPageCopy, and the table of this space's copies in flight.
 */

/* The two rechecks of wp_page_copy, each removed by a mutant. */
#define PTE_CHANGED	(!MUT(NO_PTE_SAME) && lpte[l*NPG + a] != e)
#define NOW_EXCLUSIVE	(!MUT(NO_EXCL_RECHECK) && !fromZero && excl[PFNOF(e)])

inline copyStart(f_) { cpF[me] = (f_) + 1; cpG[me]++ }

/* mayReuse(f): the reuse test of a page that is not exclusive. Sets ok.
 * The PTL of a mapping is held. Each read of shared metadata is a step:
 * lockless grabs and other spaces change it meanwhile. */
inline mayReuse(f_) {
	ok = false;
	if
	:: ((f_) == 0 && FSHARED) || ((f_) != 0 && mapc[f_] != 1) -> skip
	:: else ->
		ok = EXCLTO(f_, sp, 0);
		if
		:: !ok ->
			/* snap: the copies of f_ in flight in this space's slots */
			nsnap = 0; snapM = 0; gj = 0;
			do
			:: gj < NTHR ->
				atomic {
					if
					:: tsp[gj] == sp && cpF[gj] == (f_) + 1 ->
						snapM = snapM | (1 << gj); snapG[gj] = cpG[gj]; nsnap++
					:: else
					fi;
					gj++
				}
			:: else -> break
			od;
			gj = 0;
			if
			:: nsnap > 0 ->
				ok = EXCLTO(f_, sp, nsnap);
				/* unchanged: every copy snapped is still in flight */
				do
				:: ok && gj < NTHR ->
					atomic {
						if
						:: (snapM & (1 << gj)) != 0 && (cpF[gj] != (f_) + 1 || cpG[gj] != snapG[gj]) -> ok = false
						:: else
						fi;
						gj++
					}
				:: else -> break
				od;
				gj = 0
			:: else
			fi;
			nsnap = 0; snapM = 0; snapG[0] = 0; snapG[1] = 0;
#if NTHR > 2
			snapG[2] = 0
#endif
		:: else
		fi
	fi
}

/* copyDone: end the copy in flight and drop n_ references on the old folio
 * (none for a copy of the zero page). */
inline copyDone(n_) {
	if
	:: !fromZero ->
		cpF[me] = 0;
		folioPutT(f, n_, true)
	:: else
	fi
}

/* wpPageCopy: copy the page entry e maps (or the zero page) into a new
 * page, and install it at entry a of leaf l only if, with the PTL retaken,
 * the entry is unchanged and the old page did not become exclusive. */
inline wpPageCopy() {
	/* testhook.WPCopyUnlocked */
	allocFolio(0, nf);
	if
	:: nf == 255 -> copyDone(1); err = ENOMEM
	:: else ->
		np = HEADOF(nf);
		atomic {
			if
			:: !fromZero ->
				assert(falloc[f]);	/* we hold a reference */
				data[np] = data[PFNOF(e)]	/* copyPage: no lock */
			:: else
			fi;
			data[np] = data[np] | wb	/* f.store: the copy is ours alone */
		}
		/* testhook.WPCopyBeforeInstall */
		relock(l, mine);
		atomic {
			if
			:: !mine || SHARED(l) || PTE_CHANGED || NOW_EXCLUSIVE -> ok = false; unlockLeaf(l)
			:: else ->
				/* Property 3: no exclusive page is ever replaced by a copy. */
				assert(fromZero || !excl[PFNOF(e)]);
				addMapcount(nf, 1, sp);
				excl[np] = true;
				h = lpte[l*NPG + a];	/* l.Clear(i, 1): whatever is there goes */
				lpte[l*NPG + a] = MKPTE(np, fw);
				flushClear(l);
				if
				:: wb != 0 -> setShadow(sp, a, shadow[sp*NPG + a] | wb); applied = true
				:: else
				fi;
				if
				:: !fromZero -> subMapcount(f, 1, sp)	/* removeMapping */
				:: else
				fi;
				h = 0;
				ok = true; unlockLeaf(l)
			fi
		}
		if
		:: !ok ->
			folioPut(nf, 1);
			copyDone(1)
		:: else ->
			copyDone(2);
			done = true
		fi
	fi;
	d_step { nf = 0; np = 0 }
}

/* doWPPage: a write or unshare fault on present read-only entry e (a of
 * leaf l); the PTL is held, and released here. An exclusive page is always
 * reused; another is reused if mayReuse, else copied. */
inline doWPPage() {
	if
	:: e == ZPTE ->
		unlockLeaf(l);
		fromZero = true;
		wpPageCopy()
	:: else ->
		pfn = PFNOF(e); f = FOLIOOF(pfn);
		if
		:: excl[pfn] -> ok = true
		:: else -> mayReuse(f)
		fi;
		if
		:: ok ->
			atomic {
				excl[pfn] = true;
				if
				:: fw -> lpte[l*NPG + a] = e | WB
				:: else
				fi;
				unlockLeaf(l)
			}
			done = true
		:: else ->
			atomic {
				folioGet(f, 1);
				tref[me] = f + 1;
				copyStart(f);
				unlockLeaf(l)
			}
			fromZero = false;
			wpPageCopy()
		fi
	fi;
	d_step { fromZero = false; pfn = 0; f = 0 }
}
