// Package decide holds the sync engine's pure decisions: how a change pulled
// from a peer's log is reconciled with this node's cache entry for the same
// path (Resolve), and which of this node's records and blobs may be deleted
// from the relay (Collectable).
//
// Nothing here does I/O or reads the clock; the time, when needed, is an
// argument. Every decision is a function of its arguments only, so every
// node given the same two versions reaches the same result.
package decide
