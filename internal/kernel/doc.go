// Package kernel measures what the host kernel does for anonymous memory,
// so that anonfolio's figures can be reported as ratios against them in the
// same run: fork() of this process, first-touch and copy-on-write faults on
// plain mappings, and the memory bandwidth of clearing and copying.
package kernel
