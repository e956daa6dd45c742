package folio

// touchPages writes one byte per host page of b so that the kernel commits
// it: the fallback for MADV_POPULATE_WRITE. b must read zero (it is fresh).
func touchPages(b []byte, hostPage int) {
	for i := 0; i < len(b); i += hostPage {
		b[i] = 0
	}
}
