module github.com/anonfolio/anonfolio

go 1.26.8

require (
	github.com/klauspost/cpuid/v2 v2.4.2
	github.com/zeebo/xxh3 v1.1.0
	golang.org/x/sys v0.50.0
)

require github.com/tidwall/btree v1.8.2
