package main

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/anonfolio/anonfolio/bench"
)

// A sizeUnit is a unit a size may carry: binary (powers of 1024) or
// decimal (powers of 1000), as the IEC and SI write them.
type sizeUnit struct {
	suffix string
	mult   int64
}

var sizeUnits = []sizeUnit{
	{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30},
	{"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9},
	{"B", 1},
}

func (u sizeUnit) decimal() bool { return len(u.suffix) == 2 }

// parseSize parses a byte count: a positive whole number with an optional
// unit, KiB, MiB or GiB (binary: 1GiB is 1073741824 bytes) or KB, MB or
// GB (decimal: 1GB is 1000000000 bytes), case aside. A bare K, M or G is
// refused as ambiguous.
func parseSize(s string) (int64, error) {
	n, _, _, err := parseSizeUnit(s)
	return n, err
}

// parseSizeUnit is parseSize that also returns the number and the unit as
// written.
func parseSizeUnit(s string) (n int64, num string, unit sizeUnit, err error) {
	num = strings.TrimSpace(s)
	unit = sizeUnit{"", 1}
	for _, u := range sizeUnits {
		if len(num) > len(u.suffix) && strings.EqualFold(num[len(num)-len(u.suffix):], u.suffix) {
			unit, num = u, num[:len(num)-len(u.suffix)]
			break
		}
	}
	if k := len(num); unit.suffix == "" && k > 1 && strings.ContainsRune("KkMmGg", rune(num[k-1])) {
		if _, err := strconv.ParseInt(num[:k-1], 10, 64); err == nil {
			x, u := num[:k-1], strings.ToUpper(num[k-1:])
			return 0, "", unit, fmt.Errorf("%w: size %q is ambiguous: write %s%siB (binary, powers of 1024) or %s%sB (decimal, powers of 1000)",
				bench.ErrInvalid, s, x, u, x, u)
		}
	}
	n, err = strconv.ParseInt(num, 10, 64)
	if err != nil || n <= 0 || n > (1<<62)/unit.mult {
		return 0, "", unit, fmt.Errorf("%w: bad size %q: want a positive whole number of bytes with an optional unit KiB, MiB, GiB (powers of 1024) or KB, MB, GB (powers of 1000)",
			bench.ErrInvalid, s)
	}
	return n * unit.mult, num, unit, nil
}

// sizeAlign is what -size must be a multiple of: the arena maps in PMDs.
const sizeAlign = 2 << 20

// parseMemorySize parses -size: parseSize, and a multiple of 2 MiB, with
// an error that says what was meant when it is not (1GB is decimal: did
// you mean 1GiB?).
func parseMemorySize(s string) (int64, error) {
	n, num, unit, err := parseSizeUnit(s)
	if err != nil || n%sizeAlign == 0 {
		return n, err
	}
	hint := "the least is 2MiB"
	if lo := n / sizeAlign * sizeAlign; lo > 0 {
		hint = fmt.Sprintf("the nearest are %s and %s", mib(lo), mib(lo+sizeAlign))
	}
	if unit.decimal() {
		hint = fmt.Sprintf("%s is decimal (powers of 1000); did you mean %s%ciB? (%s)", unit.suffix, num, unit.suffix[0], hint)
	}
	return 0, fmt.Errorf("%w: size %q is %d bytes, not a multiple of 2MiB: %s", bench.ErrInvalid, s, n, hint)
}

func mib(n int64) string {
	if n%(1<<30) == 0 {
		return fmt.Sprintf("%dGiB", n>>30)
	}
	return fmt.Sprintf("%dMiB", n>>20)
}
