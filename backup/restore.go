package backup

import (
	"bytes"
	"cmp"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"io"
	"slices"
	"time"

	"github.com/escalefs/escalefs/crypto"
	"github.com/escalefs/escalefs/relay"
	"github.com/escalefs/escalefs/sync/layout"
)

var (
	// ErrNotEmpty means that the target relay already holds a repository
	// (or part of one) and Force was not given.
	ErrNotEmpty = errors.New("the relay already holds a repository")
	// ErrOtherRepository means that the target relay holds another
	// repository than the archive's.
	ErrOtherRepository = errors.New("the relay holds a different repository")
)

// Target is what Restore needs of a relay.
type Target interface {
	Source
	Put(ctx context.Context, name string, p relay.Payload) error
}

// RestoreOptions tune Restore.
type RestoreOptions struct {
	Options
	// Force restores into a relay that already holds the same repository:
	// objects present with the same size are skipped, the others put.
	Force bool
}

// RestoreSummary is what Restore did.
type RestoreSummary struct {
	Repository string
	Objects    int   // objects put
	Bytes      int64 // their total size
	Skipped    int   // objects already present with the same size
	Elapsed    time.Duration
}

// Restore puts the objects of a verified archive (idx, from Verify over the
// same ra) onto dst. It first looks at what dst holds: a relay with another
// repository is refused, one with any object of the same repository is
// refused unless Force. Blobs go first, then snapshots and records, and
// escale.json last, so that an interrupted restore leaves no repository a
// node would join. Each object is checked against its SHA-256 again while
// it is put, and a mismatch fails that Put.
func Restore(ctx context.Context, dst Target, ra io.ReaderAt, idx *Index, opts RestoreOptions) (RestoreSummary, error) {
	log := opts.logger()
	start := time.Now()
	sum := RestoreSummary{Repository: idx.Manifest.Repository}

	existing := make(map[string]int64)
	err := dst.List(ctx, "", func(oi relay.ObjectInfo) error {
		if InRepository(oi.Name) {
			existing[oi.Name] = oi.Size
		}
		return nil
	})
	if err != nil {
		return sum, fmt.Errorf("listing the relay: %w", err)
	}
	var current []byte
	if _, ok := existing[crypto.ConfigName]; ok {
		if current, err = readConfig(ctx, dst); err != nil && !errors.Is(err, ErrNoRepository) {
			return sum, err
		}
	}
	if current != nil {
		cfg, err := crypto.ParseConfig(current)
		switch {
		case err != nil && !opts.Force:
			return sum, fmt.Errorf("%w: its escale.json is not valid (%v); give --force to replace it with the archive's", ErrNotEmpty, err)
		case err == nil && cfg.Repository.String() != idx.Manifest.Repository:
			return sum, fmt.Errorf("%w: the relay holds repository %s, the archive is of repository %s; "+
				"restore into an empty relay (or remove that repository first)", ErrOtherRepository, cfg.Repository, idx.Manifest.Repository)
		}
	}
	if len(existing) > 0 && !opts.Force {
		what := "objects of a repository (no escale.json)"
		if current != nil {
			what = "repository " + idx.Manifest.Repository
		}
		return sum, fmt.Errorf("%w: it holds %s, %d objects; restore into an empty relay, or give --force "+
			"to put only the archive's objects it lacks", ErrNotEmpty, what, len(existing))
	}
	if current != nil && !bytes.Equal(current, idx.Config) {
		log.Warn("the relay's escale.json differs from the archive's; it is replaced", "repository", idx.Manifest.Repository)
	}

	order := slices.Clone(idx.Entries)
	slices.SortStableFunc(order, func(a, b Entry) int { return cmp.Compare(rank(a.Name), rank(b.Name)) })
	log.Info("restore started", "repository", sum.Repository, "objects", len(order), "present", len(existing))
	done := 0
	for _, e := range order {
		if err := ctx.Err(); err != nil {
			return sum, err
		}
		done++
		if size, ok := existing[e.Name]; ok && size == e.Size && (e.Name != crypto.ConfigName || bytes.Equal(current, idx.Config)) {
			sum.Skipped++
		} else {
			if err := dst.Put(ctx, e.Name, newPayload(ra, e)); err != nil {
				return sum, fmt.Errorf("putting %s: %w", e.Name, err)
			}
			sum.Objects++
			sum.Bytes += e.Size
		}
		if done%opts.every() == 0 {
			log.Info("restore progress", "objects", done, "of", len(order), "put", sum.Objects, "skipped", sum.Skipped, "bytes", sum.Bytes)
		}
	}
	sum.Elapsed = time.Since(start)
	return sum, nil
}

// rank orders the puts of a restore: blobs, snapshots, records, escale.json.
func rank(name string) int {
	switch layout.Parse(name).Kind {
	case layout.Blob:
		return 0
	case layout.Snapshot:
		return 1
	case layout.Config:
		return 3
	default:
		return 2
	}
}

// payload is an entry's content in the archive, checked against the
// entry's SHA-256 as it is read: the read that completes it fails when the
// archive changed since Verify, so an atomic Put leaves nothing.
type payload struct {
	e  Entry
	sr *io.SectionReader
	h  hash.Hash
	n  int64
}

func newPayload(ra io.ReaderAt, e Entry) *payload {
	return &payload{e: e, sr: io.NewSectionReader(ra, e.offset, e.Size), h: sha256.New()}
}

func (p *payload) Read(b []byte) (int, error) {
	n, err := p.sr.Read(b)
	p.h.Write(b[:n])
	p.n += int64(n)
	if p.n == p.e.Size && (n > 0 || p.e.Size == 0) {
		var got [sha256.Size]byte
		if p.h.Sum(got[:0]); got != p.e.SHA256 {
			return n, relay.Permanent(fmt.Errorf("%w: entry %q changed since it was verified", ErrCorrupt, p.e.Name))
		}
	}
	if err == io.EOF && p.n != p.e.Size {
		return n, relay.Permanent(fmt.Errorf("%w: entry %q changed since it was verified", ErrCorrupt, p.e.Name))
	}
	return n, err
}

func (p *payload) Length() int64 { return p.e.Size }

func (p *payload) Rewind() error {
	p.h.Reset()
	p.n = 0
	_, err := p.sr.Seek(0, io.SeekStart)
	return err
}
