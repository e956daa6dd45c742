package conformance

import (
	"fmt"
	"os"
	"testing"
)

// TestMain runs the suites, then prints the cow.c matrix's totals the way a
// kselftest plan ends, if the matrix ran.
func TestMain(m *testing.M) {
	code := m.Run()
	if pass, fail := cowcTotals.pass.Load(), cowcTotals.fail.Load(); pass+fail > 0 {
		fmt.Printf("# cow.c: %d passed, %d failed\n# Totals: pass:%d fail:%d xfail:0 xpass:0 skip:0 error:0\n", pass, fail, pass, fail)
	}
	os.Exit(code)
}

// cowcPageSizes are the base page sizes the cow.c matrix runs at: the
// host's 4 KiB and arm64's 16 and 64 KiB granules.
var cowcPageSizes = []int{4096, 16384, 65536}
