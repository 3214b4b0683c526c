package cache

import "github.com/escalefs/escalefs/cache/meta"

// Kinds and fingerprints are plain values of package meta.
type (
	Kind      = meta.Kind
	LocalStat = meta.LocalStat
)

// The kinds of entry (meta.Kind).
const (
	KindFile    = meta.KindFile
	KindDir     = meta.KindDir
	KindSymlink = meta.KindSymlink
)
