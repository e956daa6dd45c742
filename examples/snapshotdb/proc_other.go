//go:build !linux

package main

func procStatus(string) int64 { return -1 }

func resetPeakRSS() {}
