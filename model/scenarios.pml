/*
 * scenarios.pml: the thread programs. Thread t runs in space tsp[t]; a
 * child thread starts when Fork has returned (if the Fork failed, the
 * child is closed and its operations fail with ErrClosed). A thread may
 * first choose one of its programs (ch), nondeterministically; spin
 * explores every choice and every interleaving. PROGRAM sets operation k
 * of thread me. The scenario (scen, from SCENARIO: config.pml) is chosen
 * when pan starts; each is named after the part of the seed question it
 * answers, or the lockless path it exercises (model/README.md).
 *
 *  1 gupfast   Fork against GUP-fast and lockless writes. Parent thread 0
 *              splits the huge entry (DontNeed of page 1) or not, then
 *              forks. Parent thread 1 pins page 0 for writing and writes
 *              through the pin, or writes page 0 (WriteAt). The child reads
 *              page 0.
 *  2 reuse     Copy or reuse after the other space exits. The parent forks
 *              and writes page 0 (a COW copy while the child maps it); a
 *              second parent thread pins page 0 read-only (an unshare:
 *              reuse or copy) and writes through the pin; the child exits
 *              or drops both pages.
 *  3 getexit   Reuse after the other space exits, with a plain reference
 *              (GUP without a pin: vmsplice). The parent forks and writes
 *              page 0; the child gets page 0, exits, and reads through the
 *              Get. Two threads.
 *  4 drop      The other space exits or drops the shared leaf while this
 *              one reads or holds a reference. The parent forks, then drops
 *              both pages or exits; a second parent thread reads page 0
 *              (a seqlock read), or gets page 0 (before or after the Fork)
 *              and reads through the Get; the child writes page 0.
 *  5 mprotect  Copy or reuse with mprotect. The parent forks, makes both
 *              pages read-only, then writable again, and writes page 0;
 *              the child exits or writes page 0. Two threads.
 *  6 zapread   A page freed under a seqlock read and reused by the other
 *              space. The parent forks, writes page 0 (its own copy now)
 *              and drops page 0; a second parent thread reads page 0 (an
 *              Accessor's read: no reader section); the child writes page
 *              0, whose COW copy takes the lowest free page: the one the
 *              parent dropped. The parent starts split (a leaf).
 *  7 zapwrite  The same with a reference-free write (WriteAt) in the
 *              second parent thread: the page must not be freed under it,
 *              and the leaf it found must still be its space's.
 *  9 wide      (check.sh -large) Three threads with a choice of programs
 *              each. Parent thread 0 forks, then writes page 0, drops both
 *              pages or exits. Parent thread 1 pins page 0 read-only and
 *              writes through the pin, or reads page 0, or gets page 0 and
 *              reads through the Get. The child exits, drops both pages,
 *              writes page 0, or gets page 0, exits and reads through the
 *              Get.
 */

/* The parent's start: F mapped by a huge entry, or split into a leaf
 * (INIT, config.pml). */
#define INIT_HUGE	((inits & 1) != 0)
#define INIT_LEAF	((inits & 2) != 0)

/* The scenarios with two threads: the parent's and the child's. */
#define TWO_THREADS	(scen == 3 || scen == 5)

/* How many programs thread me chooses from. */
#define NCH \
	((scen == 1 && me <= 1) -> 2 : \
	((scen == 2 && me == 2) -> 2 : \
	((scen == 4 && me <= 1) -> 2 : \
	((scen == 5 && me == 1) -> 2 : \
	((scen == 9 && me <= 1) -> 3 : \
	((scen == 9 && me == 2) -> 4 : 1))))))

#define CHOOSE \
	atomic { \
		if \
		:: ch = 0 \
		:: NCH >= 2 -> ch = 1 \
		:: NCH >= 3 -> ch = 2 \
		:: NCH >= 4 -> ch = 3 \
		fi \
	}

#define S(n_)	scen == n_ && me ==
#define PROGRAM \
	if \
	:: S(1) 0 && k == 0 && ch == 0 -> DONTNEED(1, 2) \
	:: S(1) 0 && ((k == 0 && ch == 1) || (k == 1 && ch == 0)) -> FORK \
	:: S(1) 1 && k == 0 && ch == 0 -> PIN(0, true) \
	:: S(1) 1 && k == 1 && ch == 0 -> PINWRITE \
	:: S(1) 1 && k == 0 && ch == 1 -> WRITE(0) \
	:: S(1) 2 && k == 0 -> READ(0) \
	\
	:: S(2) 0 && k == 0 -> FORK \
	:: S(2) 0 && k == 1 -> WRITE(0) \
	:: S(2) 1 && k == 0 -> PIN(0, false) \
	:: S(2) 1 && k == 1 -> PINWRITE \
	:: S(2) 2 && k == 0 && ch == 0 -> CLOSE \
	:: S(2) 2 && k == 0 && ch == 1 -> DONTNEED(0, 2) \
	\
	:: S(3) 0 && k == 0 -> FORK \
	:: S(3) 0 && k == 1 -> WRITE(0) \
	:: S(3) 1 && k == 0 -> GET(0) \
	:: S(3) 1 && k == 1 -> CLOSE \
	:: S(3) 1 && k == 2 -> REFREAD \
	\
	:: S(4) 0 && k == 0 -> FORK \
	:: S(4) 0 && k == 1 && ch == 0 -> DONTNEED(0, 2) \
	:: S(4) 0 && k == 1 && ch == 1 -> CLOSE \
	:: S(4) 1 && k == 0 && ch == 0 -> READ(0) \
	:: S(4) 1 && k == 0 && ch == 1 -> GET(0) \
	:: S(4) 1 && k == 1 && ch == 1 -> REFREAD \
	:: S(4) 2 && k == 0 -> WRITE(0) \
	\
	:: S(5) 0 && k == 0 -> FORK \
	:: S(5) 0 && k == 1 -> PROTECT(0, 2, RO) \
	:: S(5) 0 && k == 2 -> PROTECT(0, 2, RW) \
	:: S(5) 0 && k == 3 -> WRITE(0) \
	:: S(5) 1 && k == 0 && ch == 0 -> CLOSE \
	:: S(5) 1 && k == 0 && ch == 1 -> WRITE(0) \
	\
	:: (scen == 6 || scen == 7) && me == 0 && k == 0 -> FORK \
	:: (scen == 6 || scen == 7) && me == 0 && k == 1 -> WRITE(0) \
	:: (scen == 6 || scen == 7) && me == 0 && k == 2 -> DONTNEED(0, 1) \
	:: S(6) 1 && k == 0 -> AREAD(0) \
	:: S(7) 1 && k == 0 -> WRITE(0) \
	:: (scen == 6 || scen == 7) && me == 2 && k == 0 -> WRITE(0) \
	\
	:: S(9) 0 && k == 0 -> FORK \
	:: S(9) 0 && k == 1 && ch == 0 -> WRITE(0) \
	:: S(9) 0 && k == 1 && ch == 1 -> DONTNEED(0, 2) \
	:: S(9) 0 && k == 1 && ch == 2 -> CLOSE \
	:: S(9) 1 && k == 0 && ch == 0 -> PIN(0, false) \
	:: S(9) 1 && k == 1 && ch == 0 -> PINWRITE \
	:: S(9) 1 && k == 0 && ch == 1 -> READ(0) \
	:: S(9) 1 && k == 0 && ch == 2 -> GET(0) \
	:: S(9) 1 && k == 1 && ch == 2 -> REFREAD \
	:: S(9) 2 && k == 0 && ch == 0 -> CLOSE \
	:: S(9) 2 && k == 0 && ch == 1 -> DONTNEED(0, 2) \
	:: S(9) 2 && k == 0 && ch == 2 -> WRITE(0) \
	:: S(9) 2 && k == 0 && ch == 3 -> GET(0) \
	:: S(9) 2 && k == 1 && ch == 3 -> CLOSE \
	:: S(9) 2 && k == 2 && ch == 3 -> REFREAD \
	:: else \
	fi

#define START_THREADS \
	tsp[0] = P; \
	run Thread(0, P); \
	if \
	:: TWO_THREADS -> tsp[1] = C; run Thread(1, C) \
	:: else -> tsp[1] = P; tsp[2] = C; run Thread(1, P); run Thread(2, C) \
	fi
