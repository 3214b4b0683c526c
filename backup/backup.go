// Package backup copies a repository's relay objects into a tar archive and
// back. It needs no secret: the objects it copies are the encrypted records
// and blobs and the public escale.json, byte for byte.
//
// An archive holds, in this order, escale.json, every object under nodes/
// and blobs/ (sorted by name), each as a regular file named after the
// object, and last a manifest, escalefs-backup.json, that lists every
// object with its size and SHA-256 (docs/format.md §13). Restore verifies
// the whole archive against its manifest before it writes anything.
package backup

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/escalefs/escalefs/crypto"
	"github.com/escalefs/escalefs/relay"
	"github.com/escalefs/escalefs/sync/layout"
)

// ManifestName is the name of the archive's last entry.
const ManifestName = "escalefs-backup.json"

// ManifestFormat and ManifestVersion identify the manifest.
const (
	ManifestFormat  = "escalefs-backup"
	ManifestVersion = 1
)

// DefaultProgressEvery is how many objects pass between two progress lines.
const DefaultProgressEvery = 1000

// maxConfigSize bounds escale.json (docs/format.md §5).
const maxConfigSize = 16 << 10

var (
	// ErrNoRepository means that the relay holds no escale.json.
	ErrNoRepository = errors.New("the relay holds no repository (no escale.json)")
	// ErrChanged means that an object changed while it was copied.
	ErrChanged = errors.New("object changed while it was read")
)

// Source is what Write needs of a relay.
type Source interface {
	List(ctx context.Context, dir string, fn func(relay.ObjectInfo) error) error
	Get(ctx context.Context, name string, offset, length int64, fn func(io.Reader) error) error
}

// Options tune Write and Restore.
type Options struct {
	// Logger receives progress lines (info) and notes; nil discards them.
	Logger *slog.Logger
	// ProgressEvery is how many objects pass between two progress lines
	// (0: DefaultProgressEvery).
	ProgressEvery int
	// Now gives the time stamps of the manifest (nil: time.Now).
	Now func() time.Time
}

func (o Options) logger() *slog.Logger {
	if o.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return o.Logger
}

func (o Options) every() int {
	if o.ProgressEvery <= 0 {
		return DefaultProgressEvery
	}
	return o.ProgressEvery
}

func (o Options) now() time.Time {
	if o.Now == nil {
		return time.Now()
	}
	return o.Now()
}

// Manifest is the content of escalefs-backup.json.
type Manifest struct {
	Format     string          `json:"format"`
	Version    int             `json:"version"`
	Repository string          `json:"repository"`
	Created    time.Time       `json:"created"`
	Objects    int             `json:"objects"`
	Bytes      int64           `json:"bytes"`
	Entries    []ManifestEntry `json:"entries"`
}

// ManifestEntry describes one object of the archive.
type ManifestEntry struct {
	Name   string `json:"name"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
}

// Summary is what Write did.
type Summary struct {
	Repository string
	Objects    int   // objects in the archive
	Bytes      int64 // their total size
	Vanished   int   // listed objects deleted before they could be read
	Ignored    int   // listed objects outside the repository's directories
	Elapsed    time.Duration
}

// InRepository reports whether an object name belongs to a repository:
// escale.json and the objects under nodes/ and blobs/ (docs/format.md §4).
// Uploads in progress (tmp/) and anything else are not part of it.
func InRepository(name string) bool {
	return name == layout.ConfigName || strings.HasPrefix(name, layout.NodesDir+"/") || strings.HasPrefix(name, layout.BlobsDir+"/")
}

// Write streams every object of the repository on src into a tar archive
// written to w, followed by the manifest. Object contents are streamed, so
// memory grows with the number of objects, not their size. An object
// deleted between the listing and its read (a running node collecting) is
// skipped and logged. w is not closed.
func Write(ctx context.Context, src Source, w io.Writer, opts Options) (Summary, error) {
	log := opts.logger()
	start := time.Now()
	var sum Summary

	config, err := readConfig(ctx, src)
	if err != nil {
		return sum, err
	}
	cfg, err := crypto.ParseConfig(config)
	if err != nil {
		return sum, fmt.Errorf("reading the relay's escale.json: %w", err)
	}
	sum.Repository = cfg.Repository.String()

	var objects []relay.ObjectInfo
	err = src.List(ctx, "", func(oi relay.ObjectInfo) error {
		switch {
		case oi.Name == crypto.ConfigName:
		case InRepository(oi.Name) && !relay.IsTempName(oi.Name):
			objects = append(objects, oi)
		default:
			sum.Ignored++
			log.Debug("not part of the repository, left out", "name", oi.Name)
		}
		return nil
	})
	if err != nil {
		return sum, fmt.Errorf("listing the relay: %w", err)
	}
	slices.SortFunc(objects, func(a, b relay.ObjectInfo) int { return strings.Compare(a.Name, b.Name) })
	log.Info("backup started", "repository", sum.Repository, "objects", len(objects)+1)

	now := opts.now()
	man := Manifest{Format: ManifestFormat, Version: ManifestVersion, Repository: sum.Repository, Created: now.UTC().Truncate(time.Second)}
	tw := tar.NewWriter(w)
	add := func(name string, size int64, h hash.Hash) {
		man.Entries = append(man.Entries, ManifestEntry{Name: name, Size: size, SHA256: hex.EncodeToString(h.Sum(nil))})
		sum.Objects++
		sum.Bytes += size
		if sum.Objects%opts.every() == 0 {
			log.Info("backup progress", "objects", sum.Objects, "of", len(objects)+1, "bytes", sum.Bytes)
		}
	}

	h := sha256.New()
	h.Write(config)
	if err := tw.WriteHeader(header(crypto.ConfigName, int64(len(config)), now, now)); err != nil {
		return sum, fmt.Errorf("writing the archive: %w", err)
	}
	if _, err := tw.Write(config); err != nil {
		return sum, fmt.Errorf("writing the archive: %w", err)
	}
	add(crypto.ConfigName, int64(len(config)), h)

	for _, oi := range objects {
		if err := ctx.Err(); err != nil {
			return sum, err
		}
		h, err := copyObject(ctx, src, tw, oi, now)
		if errors.Is(err, errVanished) {
			sum.Vanished++
			log.Info("object deleted since the listing (collected by a running node), skipped", "name", oi.Name)
			continue
		}
		if err != nil {
			return sum, err
		}
		add(oi.Name, oi.Size, h)
	}

	man.Objects = len(man.Entries)
	man.Bytes = sum.Bytes
	data, err := json.MarshalIndent(man, "", "  ")
	if err != nil {
		return sum, err
	}
	data = append(data, '\n')
	if err := tw.WriteHeader(header(ManifestName, int64(len(data)), now, now)); err != nil {
		return sum, fmt.Errorf("writing the archive: %w", err)
	}
	if _, err := tw.Write(data); err != nil {
		return sum, fmt.Errorf("writing the archive: %w", err)
	}
	if err := tw.Close(); err != nil {
		return sum, fmt.Errorf("writing the archive: %w", err)
	}
	sum.Elapsed = time.Since(start)
	return sum, nil
}

// readConfig reads the relay's escale.json.
func readConfig(ctx context.Context, src Source) ([]byte, error) {
	data, err := relay.ReadAll(ctx, src.Get, crypto.ConfigName, maxConfigSize)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, ErrNoRepository
	}
	if err != nil {
		return nil, fmt.Errorf("reading escale.json: %w", err)
	}
	if len(data) > maxConfigSize {
		return nil, fmt.Errorf("reading the relay's escale.json: %w: more than %d bytes", crypto.ErrConfigCorrupt, maxConfigSize)
	}
	return data, nil
}

func header(name string, size int64, mod, now time.Time) *tar.Header {
	if mod.Unix() <= 0 {
		mod = now // not reported by the backend
	}
	return &tar.Header{
		Typeflag: tar.TypeReg,
		Name:     name,
		Size:     size,
		Mode:     0o600,
		ModTime:  mod.Truncate(time.Second),
	}
}

var errVanished = errors.New("vanished")

// copyObject streams one object into tw. Its header is written only once
// the object's content starts to arrive, so an object that is gone leaves
// nothing in the archive (errVanished). A Get retried by the relay's
// wrappers starts over from the first byte: the bytes already in the
// archive are read again, compared by hash, and skipped.
func copyObject(ctx context.Context, src Source, tw *tar.Writer, oi relay.ObjectInfo, now time.Time) (hash.Hash, error) {
	h := sha256.New()
	var written int64
	started := false
	err := src.Get(ctx, oi.Name, 0, -1, func(r io.Reader) error {
		if !started {
			if err := tw.WriteHeader(header(oi.Name, oi.Size, oi.ModTime, now)); err != nil {
				return fmt.Errorf("writing the archive: %w", err)
			}
			started = true
		} else if written > 0 {
			again := sha256.New()
			if _, err := io.CopyN(again, r, written); err != nil {
				return fmt.Errorf("reading %s again: %w", oi.Name, err)
			}
			if !bytes.Equal(again.Sum(nil), h.Sum(nil)) {
				return relay.Permanent(fmt.Errorf("%w: %s differs from what was read before", ErrChanged, oi.Name))
			}
		}
		buf := make([]byte, 64<<10)
		for {
			n, err := io.ReadFull(r, buf[:min(int64(len(buf)), oi.Size-written+1)])
			if int64(n) > oi.Size-written {
				return relay.Permanent(fmt.Errorf("%w: %s is larger than the %d bytes listed; run the backup again", ErrChanged, oi.Name, oi.Size))
			}
			if n > 0 {
				if _, werr := tw.Write(buf[:n]); werr != nil {
					return relay.Permanent(fmt.Errorf("writing the archive: %w", werr))
				}
				h.Write(buf[:n])
				written += int64(n)
			}
			switch {
			case errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF):
				if written != oi.Size {
					return relay.Permanent(fmt.Errorf("%w: %s has %d bytes, %d were listed; run the backup again", ErrChanged, oi.Name, written, oi.Size))
				}
				return nil
			case err != nil:
				return err
			}
		}
	})
	switch {
	case err == nil:
		return h, nil
	case errors.Is(err, fs.ErrNotExist) && !started:
		return nil, errVanished
	case errors.Is(err, fs.ErrNotExist):
		return nil, fmt.Errorf("%s was deleted while it was read; run the backup again: %w", oi.Name, err)
	default:
		return nil, fmt.Errorf("copying %s: %w", oi.Name, err)
	}
}
