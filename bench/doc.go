// Package bench answers the question users ask of large folios: which folio
// order should my workload use? It runs workloads (sequential fill, sparse
// touch, random 8-byte writes, read-modify-write of hash-table slots, a
// read-mostly scan, fork churn, pinned I/O, and any of your own) under
// policies (single orders, the default set, all orders, each with page or
// folio COW) and reports, for every pair, the time, the faults per order,
// the Fork latency, the COW copies and the memory resident against the
// memory actually touched.
//
// Every figure comes with its baseline, measured in the same run because the
// machines it runs on are noisy: streaming memclr and memmove (the physical
// limit of a fault and of a COW copy), the host kernel's own first-touch
// fault, fork() and COW fault on plain mmap'd memory, and each workload run
// on plain kernel memory (4 KiB pages and THP). Each workload's policies
// run in interleaved rounds, and the spread of those rounds is the noise:
// Recommend picks, per workload, the fastest policy whose bloat stays under
// a threshold, calls the policies within the noise of it a tie, and breaks
// the tie by memory, copies and simplicity, never by noise. Report's
// WriteSummary prints that answer with the cow.Options literal to use;
// WriteTable prints every metric.
//
// To measure your own access pattern, give Config.Custom a Workload whose
// Func works on a Region (a fresh space under the policy, with a seeded
// Rand); see the Workload example.
//
// Run it from Go (Run), from the command (go run ./bench/cmd/orderbench) or
// as Go benchmarks (go test -bench . ./bench).
package bench
