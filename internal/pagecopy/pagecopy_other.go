//go:build !amd64

package pagecopy

// On other platforms (arm64's STNP is only a hint) the copy is a plain
// memmove.

func canStream([]byte, int) bool { return false }

func stream(dst, src []byte, n, _ int) { copy(dst[:n], src[:n]) }
