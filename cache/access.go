package cache

import "github.com/escalefs/escalefs/cache/meta"

// The access modifiers are plain values of package meta.
type (
	Perm         = meta.Perm
	Access       = meta.Access
	AccessUpdate = meta.AccessUpdate
)

// The states of an access modifier (meta.Perm).
const (
	PermUnset = meta.PermUnset
	PermAllow = meta.PermAllow
	PermDeny  = meta.PermDeny
)

// ParseAccess is meta.ParseAccess.
func ParseAccess(s string) (AccessUpdate, error) { return meta.ParseAccess(s) }
