/*
 * scenarios.pml: the thread programs. Thread t runs in space tsp[t]; a
 * child thread starts when Fork has returned (if the Fork failed, the
 * child is closed and its operations fail with ErrClosed). A thread may
 * first choose one of its programs (ch), nondeterministically; spin
 * explores every choice and every interleaving. PROGRAM sets operation k
 * of thread me. Each scenario is named after the part of the seed
 * question it answers (model/README.md).
 */

#ifndef SCENARIO
#define SCENARIO 1
#endif

/* The parent's start: F mapped by a huge entry, or split into a leaf. */
#ifndef INIT_HUGE
#define INIT_HUGE true
#endif
#ifndef INIT_LEAF
#define INIT_LEAF true
#endif

#if SCENARIO == 1
/*
 * gupfast: Fork against GUP-fast and lockless writes. Parent thread 0
 * splits the huge entry (DontNeed of page 1) or not, then forks. Parent
 * thread 1 pins page 0 for writing and writes through the pin, or writes
 * page 0 (WriteAt's lockless path). The child reads page 0.
 */
#define CHOOSE \
	if \
	:: me == 0 || me == 1 -> if :: ch = 0 :: ch = 1 fi \
	:: else \
	fi
#define PROGRAM \
	if \
	:: me == 0 && k == 0 && ch == 0 -> DONTNEED(1, 2) \
	:: me == 0 && ((k == 0 && ch == 1) || (k == 1 && ch == 0)) -> FORK \
	:: me == 1 && k == 0 && ch == 0 -> PIN(0, true) \
	:: me == 1 && k == 1 && ch == 0 -> PINWRITE \
	:: me == 1 && k == 0 && ch == 1 -> WRITE(0) \
	:: me == 2 && k == 0 -> READ(0) \
	:: else \
	fi

#elif SCENARIO == 2
/*
 * reuse: copy or reuse after the other space exits. The parent forks and
 * writes page 0 (a COW copy while the child maps it); a second parent
 * thread pins page 0 read-only (an unshare: reuse or copy) and writes
 * through the pin; the child exits or drops both pages.
 */
#define CHOOSE \
	if \
	:: me == 2 -> if :: ch = 0 :: ch = 1 fi \
	:: else \
	fi
#define PROGRAM \
	if \
	:: me == 0 && k == 0 -> FORK \
	:: me == 0 && k == 1 -> WRITE(0) \
	:: me == 1 && k == 0 -> PIN(0, false) \
	:: me == 1 && k == 1 -> PINWRITE \
	:: me == 2 && k == 0 && ch == 0 -> CLOSE \
	:: me == 2 && k == 0 && ch == 1 -> DONTNEED(0, 2) \
	:: else \
	fi

#elif SCENARIO == 3
/*
 * getexit: reuse after the other space exits, with a plain reference
 * (GUP without a pin: vmsplice). The parent forks and writes page 0; the
 * child gets page 0, exits, and reads through the Get.
 */
#define CHOOSE	skip
#define PROGRAM \
	if \
	:: me == 0 && k == 0 -> FORK \
	:: me == 0 && k == 1 -> WRITE(0) \
	:: me == 1 && k == 0 -> GET(0) \
	:: me == 1 && k == 1 -> CLOSE \
	:: me == 1 && k == 2 -> REFREAD \
	:: else \
	fi
#define TWO_THREADS

#elif SCENARIO == 4
/*
 * drop: the other space exits or drops the shared leaf while this one
 * reads or holds a reference. The parent forks, then drops both pages or
 * exits; a second parent thread reads page 0 (lockless), or gets page 0
 * (before or after the Fork) and reads through the Get; the child writes
 * page 0.
 */
#define CHOOSE \
	if \
	:: me == 0 || me == 1 -> if :: ch = 0 :: ch = 1 fi \
	:: else \
	fi
#define PROGRAM \
	if \
	:: me == 0 && k == 0 -> FORK \
	:: me == 0 && k == 1 && ch == 0 -> DONTNEED(0, 2) \
	:: me == 0 && k == 1 && ch == 1 -> CLOSE \
	:: me == 1 && k == 0 && ch == 0 -> READ(0) \
	:: me == 1 && k == 0 && ch == 1 -> GET(0) \
	:: me == 1 && k == 1 && ch == 1 -> REFREAD \
	:: me == 2 && k == 0 -> WRITE(0) \
	:: else \
	fi

#elif SCENARIO == 5
/*
 * mprotect: copy or reuse with mprotect. The parent forks, makes both
 * pages read-only, then writable again, and writes page 0; the child
 * exits or writes page 0.
 */
#define CHOOSE \
	if \
	:: me == 1 -> if :: ch = 0 :: ch = 1 fi \
	:: else \
	fi
#define PROGRAM \
	if \
	:: me == 0 && k == 0 -> FORK \
	:: me == 0 && k == 1 -> PROTECT(0, 2, RO) \
	:: me == 0 && k == 2 -> PROTECT(0, 2, RW) \
	:: me == 0 && k == 3 -> WRITE(0) \
	:: me == 1 && k == 0 && ch == 0 -> CLOSE \
	:: me == 1 && k == 0 && ch == 1 -> WRITE(0) \
	:: else \
	fi
#define TWO_THREADS

#elif SCENARIO == 9
/*
 * wide (the larger configuration, -DSCENARIO=9): three threads with a
 * choice of programs each. Parent thread 0 forks, then writes page 0,
 * drops both pages or exits. Parent thread 1 pins page 0 read-only and
 * writes through the pin, or reads page 0, or gets page 0 and reads
 * through the Get. The child exits, drops both pages, writes page 0, or
 * gets page 0, exits and reads through the Get.
 */
#define CHOOSE \
	if \
	:: me == 0 -> if :: ch = 0 :: ch = 1 :: ch = 2 fi \
	:: me == 1 -> if :: ch = 0 :: ch = 1 :: ch = 2 fi \
	:: me == 2 -> if :: ch = 0 :: ch = 1 :: ch = 2 :: ch = 3 fi \
	fi
#define PROGRAM \
	if \
	:: me == 0 && k == 0 -> FORK \
	:: me == 0 && k == 1 && ch == 0 -> WRITE(0) \
	:: me == 0 && k == 1 && ch == 1 -> DONTNEED(0, 2) \
	:: me == 0 && k == 1 && ch == 2 -> CLOSE \
	:: me == 1 && k == 0 && ch == 0 -> PIN(0, false) \
	:: me == 1 && k == 1 && ch == 0 -> PINWRITE \
	:: me == 1 && k == 0 && ch == 1 -> READ(0) \
	:: me == 1 && k == 0 && ch == 2 -> GET(0) \
	:: me == 1 && k == 1 && ch == 2 -> REFREAD \
	:: me == 2 && k == 0 && ch == 0 -> CLOSE \
	:: me == 2 && k == 0 && ch == 1 -> DONTNEED(0, 2) \
	:: me == 2 && k == 0 && ch == 2 -> WRITE(0) \
	:: me == 2 && k == 0 && ch == 3 -> GET(0) \
	:: me == 2 && k == 1 && ch == 3 -> CLOSE \
	:: me == 2 && k == 2 && ch == 3 -> REFREAD \
	:: else \
	fi
#endif

#ifdef TWO_THREADS
#define NTHR 2
#define START_THREADS \
	tsp[0] = P; tsp[1] = C; \
	run Thread(0, P); run Thread(1, C)
#else
#define START_THREADS \
	tsp[0] = P; tsp[1] = P; tsp[2] = C; \
	run Thread(0, P); run Thread(1, P); run Thread(2, C)
#endif
