// Package meta holds the plain values of escalefs's model of a folder,
// shared by the cache, the record format (sync/proto) and the mount (fs):
// paths, kinds, fingerprints, access modifiers and version vectors. It
// imports nothing of escalefs and no storage.
package meta
