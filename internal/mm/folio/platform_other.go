//go:build !linux

package folio

// detectTHP: only Linux has transparent huge pages.
func detectTHP() (string, int, []THPSize) { return "", 0, nil }
