//go:build !race

package cow

// raceBuild: see race_on.go.
const raceBuild = false
