package folio

import (
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

const thpDir = "/sys/kernel/mm/transparent_hugepage"

// detectTHP reads the host's THP settings from sysfs. A missing file is not
// an error: the host simply has no (or no multi-size) THP.
func detectTHP() (mode string, pmdSize int, sizes []THPSize) {
	mode = bracketed(readSysfs(filepath.Join(thpDir, "enabled")))
	pmdSize, _ = strconv.Atoi(readSysfs(filepath.Join(thpDir, "hpage_pmd_size")))
	dirs, _ := filepath.Glob(filepath.Join(thpDir, "hugepages-*kB"))
	for _, d := range dirs {
		kb, err := strconv.Atoi(strings.TrimSuffix(strings.TrimPrefix(filepath.Base(d), "hugepages-"), "kB"))
		if err != nil {
			continue
		}
		if m := bracketed(readSysfs(filepath.Join(d, "enabled"))); m != "" {
			sizes = append(sizes, THPSize{Size: kb << 10, Mode: m})
		}
	}
	sort.Slice(sizes, func(i, j int) bool { return sizes[i].Size < sizes[j].Size })
	return mode, pmdSize, sizes
}

func readSysfs(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}
