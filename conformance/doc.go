// Package conformance holds the suites that prove anonfolio behaves like
// Linux anonymous memory. It has no code of its own, only tests:
//
//   - cowc_test.go: a port of the kernel's tools/testing/selftests/mm/cow.c,
//     every anon test case × every memory configuration that applies, and
//     the non-anon cases on the shared zero page, named like the kernel's
//     lines and summed up like a kselftest plan;
//   - diff_test.go and fuzz_test.go: a reference model (internal/model) and
//     the library driven by the same random operations, every read compared;
//   - stress_test.go: writers, forkers, pinners and closers at once, for
//     every folio configuration, under the race detector.
//
// Each suite runs at base page sizes of 4, 16 and 64 KiB. TESTING.md at the
// repository root says what each covers, how to run the long modes, and what
// of the kernel's tests was left out and why.
package conformance
