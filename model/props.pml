/*
 * props.pml: the properties checked in every state (a monitor) and at
 * the end. The others are assertions where the event happens: a read
 * through a mapping or a reference (isolation, no lost write: rw.pml,
 * gup.pml), the install of a COW copy (no exclusive page replaced:
 * wp.pml), the free of a folio (no mapping or pin left: folio.pml).
 */

/* Memory: each live space's page reads what the sequential spec says it
 * must, in every state: no write is lost, and no write of one space shows
 * in the other (properties 1 and 4, through mappings). */
#define MEMOK(s, a)	(!tracked[(s)*NPG + (a)] || CONTENT(ENTRY(s, a)) == shadow[(s)*NPG + (a)])

/* Pin coherence (property 2): while a pin is held by its caller (from
 * the moment pin.Pin returns it to its Release: a fast pin undone because
 * a Fork began was never the caller's) and its address was not zapped, the
 * space maps the pinned page. */
#define PINOK(t)	(!holdPin[t] || !holdUser[t] || hold[t] == 0 || holdZap[t] || !alive[tsp[t]] || MAPS(tsp[t], holdA[t], hold[t] - 1))

#define PINSOK	(PINOK(0) && PINOK(1) && PINOK(2))

#define INVARIANT	(MEMOK(0, 0) && MEMOK(0, 1) && MEMOK(1, 0) && MEMOK(1, 1) && PINSOK)

/*
 * References, in C for compactness (it is compiled once, not at every
 * folioPut): a freed folio is neither mapped nor held nor referenced in
 * flight (property 5), and an allocated one has refcount >= mappings +
 * pins + gets (property 6). A mapping is an entry of a leaf in use (a
 * shared leaf's entries count once, as they are accounted once) or a huge
 * entry.
 */
c_code {
int folio_of(int pfn) { return pfn < 2 ? 0 : pfn - 1; }
int refs_ok(void) {
	int f, l, i, t, e, n;
	for (f = 0; f < NF; f++) {
		n = 0;
		for (l = 1; l < now.nleaf; l++) {
			if (now.lusers[l] == 0) continue;
			for (i = 0; i < NPG; i++) {
				e = now.lpte[l*NPG + i];
				if ((e & 7) != 0 && folio_of((e & 7) - 1) == f) n++;
			}
		}
		if (f == 0) n += (now.dhuge[0] != 0) + (now.dhuge[1] != 0);
		for (t = 0; t < NTHR; t++) {
			if (now.hold[t] != 0 && folio_of(now.hold[t] - 1) == f) {
				if (!now.falloc[f]) return 0;
				if (!now.holdPin[t]) n++;
			}
			if (now.tref[t] == f + 1 && !now.falloc[f]) return 0;
		}
		if (!now.falloc[f]) {
			if (n != 0 || now.ref[f] != 0) return 0;
		} else if (now.ref[f] < n + now.pinc[f]) {
			return 0;
		}
	}
	return 1;
}
#define REFS_BROKEN (refs_ok() == 0)
}

/* The monitor is enabled only in a state that breaks an invariant, so it
 * hides no deadlock (an invalid end state) and spin's other checks stay. */
active proctype monitor() {
end:	do
	:: atomic { !INVARIANT -> assert(INVARIANT) }
	:: atomic { c_expr { REFS_BROKEN } -> assert(false) }	/* properties 5, 6 */
	od
}

/* At the end, with every thread done: accounting is exact (refcount =
 * mappings + pins + gets; mapcounts = mappings, per space for F), and
 * every writable entry of a leaf not shared maps an exclusive page (a shared
 * leaf is read-only to its users whatever its entries say). */
inline finalCheck() {
	gf = 0;
	do
	:: gf < NF ->
		if
		:: falloc[gf] ->
			gn = 0; gm = 0; gp = 0; gc = 0;
			gk = 1;
			do
			:: gk < nleaf ->
				if
				:: lusers[gk] != 0 ->
					gj = 0;
					do
					:: gj < NPG ->
						if
						:: ISPAGE(lpte[gk*NPG + gj]) && FOLIOOF(PFNOF(lpte[gk*NPG + gj])) == gf ->
							gm++;
							if :: lacct[gk] == P -> gp++ :: else -> gc++ fi;
							if
							:: WRITABLE(lpte[gk*NPG + gj]) && !SHARED(gk) ->
								assert(excl[PFNOF(lpte[gk*NPG + gj])])
							:: else
							fi
						:: else
						fi;
						gj++
					:: else -> break
					od
				:: else
				fi;
				gk++
			:: else -> break
			od;
			if
			:: gf == 0 ->
				if :: dhuge[P] != 0 -> gm++; gp++ :: else fi;
				if :: dhuge[C] != 0 -> gm++; gc++ :: else fi;
				assert(mmc[P] == gp && mmc[C] == gc)
			:: else
			fi;
			assert(mapc[gf] == gm);
			gn = gm + pinc[gf];
			gk = 0;
			do
			:: gk < NTHR ->
				if
				:: hold[gk] != 0 && FOLIOOF(hold[gk] - 1) == gf && !holdPin[gk] -> gn++
				:: else
				fi;
				gk++
			:: else -> break
			od;
			assert(ref[gf] == gn)
		:: else -> assert(ref[gf] == 0)
		fi;
		gf++
	:: else -> break
	od;
	gk = 0;
	do
	:: gk < NTHR -> assert(tref[gk] == 0 && cpF[gk] == 0); gk++
	:: else -> break
	od
}
