/*
 * anonfolio.pml: a model of anonfolio's COW, pin and fork protocol, for
 * spin. model/README.md says what is modelled, what is abstracted and why,
 * and how to run it (model/check.sh). Scenarios (SCENARIO=name when pan
 * runs) give each of the two or three threads its program; spin explores
 * every interleaving and every choice. Mutants (MUTANT=name) each remove
 * one guard (config.pml).
 */

#include "config.pml"
#include "scenarios.pml"
#include "state.pml"
#include "sections.pml"
#include "tlb.pml"
#include "folio.pml"
#include "table.pml"
#include "fault.pml"
#include "wp.pml"
#include "share.pml"
#include "fork.pml"
#include "zap.pml"
#include "gup.pml"
#include "rw.pml"
#include "ops.pml"
#include "props.pml"

proctype Thread(byte me; byte sp) {
	LOCALS;
	CHOOSE;
	(sp == P || forked);
	runProgram();
	goto END;
HANDLE_FAULT:
	handleFault();
	if
	:: fret == 1 -> goto RETF1
	:: fret == 2 -> goto RETF2
	fi;
ZAP_SLOT:
	zapSlot();
	if
	:: zret == 1 -> goto RETZ1
	:: zret == 2 -> goto RETZ2
	:: zret == 3 -> goto RETZ3
	:: zret == 4 -> goto RETZ4
	fi;
END:
	skip
}

init {
	byte gk, gj, gn, gm, gp, gc, gf;
	atomic {
		configure();
		prot[P*NPG] = RW; prot[P*NPG+1] = RW;
		alive[P] = true;
		tracked[P*NPG] = true; tracked[P*NPG+1] = true;
		/* The parent starts with F written (bit 0), exclusive and
		 * writable, mapped by a huge entry or, split, by a leaf. */
		falloc[0] = true;
		excl[0] = true; excl[1] = true;
		data[0] = 1; data[1] = 1;
		setShadow(P, 0, 1); setShadow(P, 1, 1);
		if
		:: INIT_HUGE ->
			ref[0] = 1; mapc[0] = 1; mmc[P] = 1;
			dhuge[P] = MKPTE(0, 1)
		:: INIT_LEAF ->
			ref[0] = 2; mapc[0] = 2; mmc[P] = 2;
			newLeaf(P, gk);
			lpte[gk*NPG] = MKPTE(0, 1); lpte[gk*NPG+1] = MKPTE(1, 1);
			dleaf[P] = gk; gk = 0
		fi;
		START_THREADS
	}
	_nr_pr == 2;	/* init and the monitor */
	finalCheck()
}
