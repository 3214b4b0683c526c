package cache

import "github.com/escalefs/escalefs/cache/meta"

// The plain values an entry is made of belong to package meta (kinds,
// fingerprints, access modifiers, version vectors); the cache names them
// too, for the code that works with entries.
type (
	Kind          = meta.Kind
	LocalStat     = meta.LocalStat
	Perm          = meta.Perm
	Access        = meta.Access
	AccessUpdate  = meta.AccessUpdate
	VersionVector = meta.VersionVector
	Order         = meta.Order
)

const (
	KindFile    = meta.KindFile
	KindDir     = meta.KindDir
	KindSymlink = meta.KindSymlink

	PermUnset = meta.PermUnset
	PermAllow = meta.PermAllow
	PermDeny  = meta.PermDeny

	Equal      = meta.Equal
	Before     = meta.Before
	After      = meta.After
	Concurrent = meta.Concurrent
)

// ParseAccess is meta.ParseAccess.
func ParseAccess(s string) (AccessUpdate, error) { return meta.ParseAccess(s) }
