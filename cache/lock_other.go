//go:build !linux

package cache

// lockHolder cannot tell who holds the lock on this system.
func lockHolder(string) int { return 0 }
