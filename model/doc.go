// Package model holds the spin (Promela) model of anonfolio's copy-on-write,
// pin and fork protocol, and Go tests that replay the model's
// counterexamples through the real code. It has no Go API: see README.md
// for what is modelled and how to run the check (check.sh).
package model
