/*
 * config.pml: which scenario runs and which guards are removed, chosen when
 * pan starts, not when it is compiled, so that one compiled verifier checks
 * every scenario and every mutant (check.sh compiles once):
 *
 *	SCENARIO=reuse MUTANT=NO_PTE_SAME ./pan
 *
 * SCENARIO is a scenario's name or number (scenarios.pml); MUTANT is empty
 * or a comma-separated list of the names below; INIT (huge, leaf or both)
 * restricts how the parent's folio starts, mapped (the scenario's default
 * when unset: both, but for the zap scenarios, which start split). Both are constant for a
 * run: they are hidden (not in the state vector), set by init's first step.
 * A mutant's test is folded into a step the code has anyway (a guard, an
 * expression), so that the unmutated model has no extra interleavings.
 */

hidden byte scen;	/* the scenario */
hidden byte inits;	/* the parent's starts: 1 a huge entry, 2 a leaf, 3 both */
hidden int mut;		/* the mutants: a set of the bits below */

#define MUT(m_)	((mut & (m_)) != 0)

/* The guards a mutant removes; model/README.md has the table. */
#define NO_PTE_SAME		1	/* wp_page_copy's pte_same recheck */
#define NO_EXCL_RECHECK		2	/* wp_page_copy's "became exclusive" recheck */
#define NO_GUPFAST_SEQ		4	/* GUP-fast's wpSeq checks (begin and Unchanged) */
#define NO_GUPFAST_RECHECK	8	/* GUP-fast's Unchanged only (redundant) */
#define NO_FORK_DRAIN		16	/* quiesceLocked's drains, in Fork */
#define NO_FORK_COPY_PINNED	32	/* Fork's copy of the pinned exclusive pages */
#define NO_REUSE_REFCOUNT	64	/* the refcount part of the reuse test */
#define NO_WRPROTECT_LEFT	128	/* wrProtectLeft, for a DontNeed */
#define CLOSE_NO_WRPROTECT	256	/* wrProtectLeft, for a Close (issue 11 a) */
#define PIN_AFTER_RECHECK	512	/* the pincount after the recheck (issue 11 b) */
#define NO_SEQ_RECHECK		1024	/* readRun's generation recheck */
#define NO_GRACE_PERIOD		2048	/* the zap's Synchronize before the puts */
#define NO_CLEAR_FLUSH		4096	/* Leaf.Clear's generation bump */
#define NO_SHARED_CHECK		8192	/* entry()'s refusal to write a shared leaf */
#define NO_HELD_HINT		16384	/* a Get's MaybeHeld hint */
#define NO_GUP_DRAIN		32768	/* quiesceLocked's drain of GUP-fast (redundant) */
#define NO_WRITE_RECHECK	65536	/* writeRun's generation recheck (the code today) */

#define MUTANT_NAMES \
	"NO_PTE_SAME", "NO_EXCL_RECHECK", "NO_GUPFAST_SEQ", "NO_GUPFAST_RECHECK", \
	"NO_FORK_DRAIN", "NO_FORK_COPY_PINNED", "NO_REUSE_REFCOUNT", \
	"NO_WRPROTECT_LEFT", "CLOSE_NO_WRPROTECT", "PIN_AFTER_RECHECK", \
	"NO_SEQ_RECHECK", "NO_GRACE_PERIOD", "NO_CLEAR_FLUSH", "NO_SHARED_CHECK", \
	"NO_HELD_HINT", "NO_GUP_DRAIN", "NO_WRITE_RECHECK"

/* Scenario numbers, in the order of scenarios.pml. */
#define SCENARIO_NAMES \
	"", "gupfast", "reuse", "getexit", "drop", "mprotect", "zapread", "zapwrite", "", "wide"

/* configure: read SCENARIO and MUTANT; an unknown name ends pan with
 * status 2 (check.sh reports it). */
inline configure() {
	c_code {
		static const char *mnames[] = { MUTANT_NAMES, 0 };
		static const char *snames[] = { SCENARIO_NAMES, 0 };
		char buf[256], *e, *tok;
		int i;
		e = getenv("SCENARIO");
		scen = 0;
		for (i = 1; e && snames[i]; i++)
			if (snames[i][0] && (strcmp(e, snames[i]) == 0 || atoi(e) == i))
				scen = i;
		if (scen == 0) {
			fprintf(stderr, "pan: SCENARIO=%s: not a scenario of scenarios.pml\n", e ? e : "");
			exit(2);
		}
		inits = (scen == 6 || scen == 7) ? 2 : 3;
		e = getenv("INIT");
		if (e && *e) {
			if (strcmp(e, "huge") == 0) inits = 1;
			else if (strcmp(e, "leaf") == 0) inits = 2;
			else if (strcmp(e, "both") == 0) inits = 3;
			else {
				fprintf(stderr, "pan: INIT=%s: not huge, leaf or both\n", e);
				exit(2);
			}
		}
		mut = 0;
		e = getenv("MUTANT");
		snprintf(buf, sizeof buf, "%s", e ? e : "");
		for (tok = strtok(buf, ","); tok; tok = strtok(0, ",")) {
			for (i = 0; mnames[i] && strcmp(tok, mnames[i]) != 0; i++)
				;
			if (!mnames[i]) {
				fprintf(stderr, "pan: MUTANT=%s: no mutant %s in config.pml\n", e, tok);
				exit(2);
			}
			mut |= 1 << i;
		}
	}
}
