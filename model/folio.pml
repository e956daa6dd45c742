/*
 * folio.pml: folio metadata (folio/folio.go, folio/buddy.go). Each is one
 * atomic step, as the Go atomics are (a d_step: one transition). gk is
 * the ghost loop counter.
 */

/* AllocFolio: F for order 1, else the lowest free order-0 folio. af_ is
 * the folio, 255 if none is free (ErrNoMemory). Pages come zeroed: the
 * model zeroes them on free, and every allocation the protocol makes is
 * either AllocZero or wholly overwritten by a copy. */
inline allocFolio(order_, af_) {
	d_step {
		af_ = 255;
		if
		:: order_ == 1 ->
			if
			:: !falloc[0] -> af_ = 0
			:: else
			fi
		:: else ->
			gk = 1;
			do
			:: gk < NF && falloc[gk] -> gk++
			:: gk < NF && !falloc[gk] -> af_ = gk; break
			:: gk >= NF -> break
			od;
			gk = 0
		fi;
		if
		:: af_ != 255 ->
			assert(ref[af_] == 0 && mapc[af_] == 0 && pinc[af_] == 0);
			falloc[af_] = true;
			ref[af_] = 1
		:: else
		fi
	}
}

inline freeFolio(f_) {
	assert(mapc[f_] == 0 && pinc[f_] == 0);	/* freeFolio's panic */
	falloc[f_] = false;
	excl[HEADOF(f_)] = false;
	data[HEADOF(f_)] = 0;
	if
	:: (f_) == 0 -> excl[1] = false; data[1] = 0
	:: else
	fi
}

/* FolioGet: the caller holds a reference or a mapping. */
inline folioGet(f_, n_) {
	assert(ref[f_] > 0);
	ref[f_] = ref[f_] + (n_)
}

/* FolioPut, as one atomic step; tr_ clears the caller's ghost in-flight
 * reference in the same step. */
inline folioPutT(f_, n_, tr_) {
	d_step {
		assert(ref[f_] >= (n_));
		ref[f_] = ref[f_] - (n_);
		if
		:: tr_ -> tref[me] = 0
		:: else
		fi;
		if
		:: ref[f_] == 0 -> freeFolio(f_)
		:: else
		fi
	}
}
#define folioPut(f_, n_)	folioPutT(f_, n_, false)

/* FolioTryGet: a reference unless the refcount is zero (the lockless grab).
 * F is never split in the model, so the folio-identity recheck always
 * holds. */
inline folioTryGet(f_, ok_) {
	d_step {
		if
		:: ref[f_] > 0 -> ref[f_]++; tref[me] = (f_)+1; ok_ = true
		:: else -> ok_ = false
		fi
	}
}

inline addMapcount(f_, n_, s_) {
	mapc[f_] = mapc[f_] + (n_);
	if
	:: (f_) == 0 -> mmc[s_] = mmc[s_] + (n_)
	:: else
	fi
}

inline subMapcount(f_, n_, s_) {
	assert(mapc[f_] >= (n_));
	mapc[f_] = mapc[f_] - (n_);
	if
	:: (f_) == 0 -> assert(mmc[s_] >= (n_)); mmc[s_] = mmc[s_] - (n_)
	:: else
	fi
}

/* FolioExclusiveTo(head, mm, extra): every reference is a mapping by s_,
 * but for x_ of its own copies in flight. */
/* NO_REUSE_REFCOUNT: the reuse test looks at mappings only (CVE-2020-29374). */
#define EXCLTO(f_, s_, x_) \
	(((f_) == 0) -> (!FSHARED && mmc[s_] > 0 && (MUT(NO_REUSE_REFCOUNT) || mapc[0] + (x_) == ref[0])) : \
	(MUT(NO_REUSE_REFCOUNT) || ref[f_] == 1 + (x_)))
