/*
 * fault.pml: the fault path (cow/fault.go, cow/anon.go): handleFault,
 * faultOnce, faultLeaf, doAnonymousPage, doHugePMDAnonymousPage, hugeFault,
 * splitHugeLocked. A fault runs in thread-local variables: fw, fu, fp (the
 * write, unshare and private flags), wb (the write's bit when the fault
 * stores the data itself, else 0); it sets err, done and applied.
 */

#define EPROT	1
#define ENOMEM	2
#define ECLOSED	3

/* splitHugeLocked: the huge entry becomes a leaf of two PTEs
 * (SplitHugeLocked, which bumps the slot's generation: the same pages,
 * through a leaf now); the leaf carries the MaybePinned hint if F is
 * pinned, and MaybeHeld if F has references beyond its mappings (a Get
 * through the huge entry). The directory lock is held (dirL). Two steps:
 * the replacement, then the reads that decide the hints, which a lockless
 * pinner may interleave with. */
inline splitHugeLocked() {
	atomic {
		folioGet(0, 1);
		addMapcount(0, 2, sp);
		subMapcount(0, 1, sp);	/* FolioSubEntireMapcount */
		newLeaf(sp, l2);
		lpte[l2*NPG] = dhuge[sp];
		lpte[l2*NPG+1] = dhuge[sp] + 1;
		dleaf[sp] = l2;
		dhuge[sp] = 0;
		flushSlot(sp)
	}
	atomic {
		lmp[l2] = (lmp[l2] || pinc[0] > 0);	/* sticky: a pin may have set it */
		lmh[l2] = (lmh[l2] || ref[0] > mapc[0]);
		l2 = 0
	}
}

/* doHugePMDAnonymousPage: a write fault in an empty slot maps F whole. */
inline doHugePMDAnonymousPage() {
	allocFolio(1, nf);
	if
	:: nf == 255 -> skip	/* no PMD-order block: fall back to PTEs */
	:: else ->
		atomic {
			!dirL[sp] ->
			if
			:: dhuge[sp] != 0 || dleaf[sp] != 0 -> ok = false
			:: else ->
				addMapcount(0, 1, sp);	/* FolioAddEntireMapcount */
				excl[0] = true; excl[1] = true;
				dhuge[sp] = MKPTE(0, 1);
				ok = true; done = true
			fi
		}
		if
		:: !ok -> folioPut(0, 1)
		:: else
		fi
	fi;
	nf = 0
}

/* LeafAlloc: the slot's leaf, a new empty one if the slot is empty; 0 if a
 * huge entry raced in. */
inline leafAlloc() {
	l = dleaf[sp];
	if
	:: l == 0 ->
		atomic {
			!dirL[sp] ->
			l = dleaf[sp];
			if
			:: l == 0 && dhuge[sp] == 0 -> newLeaf(sp, l); dleaf[sp] = l
			:: else
			fi
		}
	:: else
	fi
}

/* doAnonymousPage: a write fault on a none entry of a leaf maps a new
 * order-0 page (anonOrder never picks the PMD order inside a leaf). The
 * fault stores its data into the page before mapping it (f.store). */
inline doAnonymousPage() {
	allocFolio(0, nf);
	if
	:: nf == 255 -> err = ENOMEM
	:: else ->
		np = HEADOF(nf);
		data[np] = data[np] | wb;
		relock(l, mine);
		atomic {
			if
			:: !mine || SHARED(l) || lpte[l*NPG + a] != 0 -> ok = false
			:: else ->
				addMapcount(nf, 1, sp);
				excl[np] = true;
				lpte[l*NPG + a] = MKPTE(np, 1);
				if
				:: wb != 0 -> setShadow(sp, a, shadow[sp*NPG + a] | wb); applied = true
				:: else
				fi;
				ok = true; done = true
			fi;
			unlockLeaf(l)
		}
		if
		:: !ok -> folioPut(nf, 1)
		:: else
		fi
	fi;
	d_step { nf = 0; np = 0 }
}

/* hugeFault: a fault on a huge entry. A write or unshare of a read-only one
 * reuses F if it is exclusive to this space, else splits (CopyPage). */
inline hugeFault() {
	lockDir(sp);
	h = dhuge[sp];
	if
	:: h == 0 -> unlockDir(sp)
	:: else ->
		if
		:: (!fw && (!fu || WRITABLE(h))) || (fw && WRITABLE(h)) -> unlockDir(sp); done = true
		:: else ->
			if
			:: excl[0] && excl[1] -> ok = true
			:: else -> mayReuse(0)
			fi;
			if
			:: ok ->
				atomic {
					excl[0] = true; excl[1] = true;
					if
					:: fw -> dhuge[sp] = h | WB
					:: else
					fi;
					unlockDir(sp)
				}
				done = true
			:: else ->
				splitHugeLocked();
				unlockDir(sp)
			fi
		fi
	fi;
	h = 0
}

/* faultLeaf: a fault on entry a of leaf l. */
inline faultLeaf() {
	if
	:: fw && !SHARED(l) && lpte[l*NPG + a] == 0 -> doAnonymousPage()
	:: else ->
		relock(l, mine);
		e = lpte[l*NPG + a];
		if
		:: !mine -> unlockLeaf(l)
		:: mine && (fw || fu || fp) && SHARED(l) ->
			unlockLeaf(l);
			unshareLeaf(l)
		:: else ->
			if
			:: e == 0 && !fw ->
				/* a read maps the zero page; an unshare goes on to copy it */
				atomic { lpte[l*NPG + a] = ZPTE; unlockLeaf(l) }
				done = !fu
			:: e == 0 && fw ->
				unlockLeaf(l);
				doAnonymousPage()
			:: e != 0 && ((fw && WRITABLE(e)) || (!fw && (!fu || WRITABLE(e)))) ->
				unlockLeaf(l);
				done = true
			:: else -> doWPPage()
			fi
		fi
	fi
}

/* faultOnce: one attempt; done false and err 0 means try again. */
inline faultOnce() {
	done = false;
	if
	:: dhuge[sp] != 0 -> hugeFault()
	:: else ->
		l = dleaf[sp];
		if
		:: l == 0 && fw -> doHugePMDAnonymousPage()	/* pmdFits: the region covers the slot */
		:: else
		fi;
		if
		:: !done && err == 0 ->
			leafAlloc();
			if
			:: l != 0 -> faultLeaf()
			:: else
			fi
		:: else
		fi
	fi;
	l = 0; e = 0
}

/* handleFault: the region check, then faultOnce until done or an error. */
inline handleFault() {
	err = 0; applied = false;
	if
	:: fw && prot[sp*NPG + a] != RW -> err = EPROT
	:: else ->
		do
		:: faultOnce();
			if
			:: err != 0 || done -> break
			:: else
			fi
		od
	fi
}
