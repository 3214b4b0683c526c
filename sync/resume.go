package sync

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"hash"
	"io"
	"os"
	"path/filepath"
	"slices"

	"github.com/escalefs/escalefs/cache"
	"github.com/escalefs/escalefs/crypto"
	"github.com/escalefs/escalefs/sync/layout"
)

// Interrupted transfers of large files resume from their last complete part:
// an upload's stored parts and a download's fetched parts are remembered in
// the cache, part by part, so that neither a broken connection nor a killed
// process sends or fetches more than one part again.

const (
	metaUploads   = "sync/uploads"   // map path → uploadProgress
	metaDownloads = "sync/downloads" // map content hash (hex) → downloadProgress
)

// uploadProgress is an upload of a large file in progress.
type uploadProgress struct {
	Hash     [32]byte         `json:"hash"`
	Size     int64            `json:"size"`
	PartSize int64            `json:"part_size"`
	Parts    []crypto.BlobRef `json:"parts,omitempty"`
	// Chunks are the chunks stored in chunk blobs so far (Config.Chunks),
	// by chunk ID in hex: an upload of the path that resumes, for this
	// content or another, does not store them again.
	Chunks map[string]storedChunk `json:"chunks,omitempty"`
}

// storedChunk is where a chunk of an upload in progress was stored.
type storedChunk struct {
	Blob   crypto.BlobRef `json:"blob"`
	Offset int64          `json:"offset"`
}

// downloadProgress is a download of a large file in progress, into a file
// of the partial directory named after the content's hash.
type downloadProgress struct {
	Node  string `json:"node"`  // the blobs' writer
	Parts int    `json:"parts"` // parts fetched, in order
	Bytes int64  `json:"bytes"` // plaintext bytes they hold
}

func loadMap[V any](tx *cache.Tx, key string) (map[string]V, error) {
	m := make(map[string]V)
	b, ok, err := tx.Meta(key)
	if err != nil || !ok {
		return m, err
	}
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("engine state %q: %w: %w", key, err, cache.ErrCorrupt)
	}
	return m, nil
}

func saveMap[V any](tx *cache.Tx, key string, m map[string]V) error {
	if len(m) == 0 {
		return tx.DeleteMeta(key)
	}
	b, err := json.Marshal(m)
	if err != nil {
		return err
	}
	return tx.SetMeta(key, b)
}

func (e *Engine) loadUpload(path string) (uploadProgress, error) {
	var p uploadProgress
	err := e.store.View(func(tx *cache.Tx) error {
		m, err := loadMap[uploadProgress](tx, metaUploads)
		p = m[path]
		return err
	})
	return p, err
}

func (e *Engine) saveUpload(path string, p uploadProgress) error {
	return e.store.Update(func(tx *cache.Tx) error {
		m, err := loadMap[uploadProgress](tx, metaUploads)
		if err != nil {
			return err
		}
		m[path] = p
		return saveMap(tx, metaUploads, m)
	})
}

// forgetUpload removes path's upload progress in tx.
func forgetUpload(tx *cache.Tx, path string) error {
	m, err := loadMap[uploadProgress](tx, metaUploads)
	if err != nil {
		return err
	}
	if _, ok := m[path]; !ok {
		return nil
	}
	delete(m, path)
	return saveMap(tx, metaUploads, m)
}

// dropUpload forgets an upload and deletes the parts and chunk blobs it
// stored.
func (e *Engine) dropUpload(ctx context.Context, path string, p uploadProgress) {
	for _, ref := range p.blobs() {
		if ref.ID == (crypto.BlobID{}) {
			continue // not stored
		}
		if err := e.r.Delete(ctx, layout.BlobName(e.self, ref.ID)); err != nil {
			e.log.Debug("deleting a part of an abandoned upload", "blob", ref.ID.String(), "err", err)
		}
	}
	if err := e.store.Update(func(tx *cache.Tx) error { return forgetUpload(tx, path) }); err != nil {
		e.log.Warn("forgetting an abandoned upload", "err", err)
	}
}

// blobs returns the parts and chunk blobs p stored, each once.
func (p uploadProgress) blobs() []crypto.BlobRef {
	out := slices.Clone(p.Parts)
	seen := make(map[crypto.BlobID]bool)
	for _, c := range p.Chunks {
		if !seen[c.Blob.ID] {
			seen[c.Blob.ID] = true
			out = append(out, c.Blob)
		}
	}
	return out
}

// countStored counts the parts of an upload in progress that are stored.
func countStored(parts []crypto.BlobRef) int {
	n := 0
	for _, p := range parts {
		if p.ID != (crypto.BlobID{}) {
			n++
		}
	}
	return n
}

func hashKey(h [32]byte) string { return hex.EncodeToString(h[:]) }

// setDownload records the progress of the download of content key; nil
// forgets it.
func (e *Engine) setDownload(key string, p *downloadProgress) error {
	return e.store.Update(func(tx *cache.Tx) error {
		m, err := loadMap[downloadProgress](tx, metaDownloads)
		if err != nil {
			return err
		}
		if p == nil {
			delete(m, key)
		} else {
			m[key] = *p
		}
		return saveMap(tx, metaDownloads, m)
	})
}

// partialDownload is the file of a download in the partial directory,
// positioned where the download resumes.
type partialDownload struct {
	key, name string
	f         *os.File
	prog      downloadProgress // where it resumes; Parts 0: from the start
	hash      hash.Hash        // of the bytes before prog.Bytes; nil if not hashed
}

// openPartial opens the partial file of the download key from node,
// resuming at the progress recorded for it when valid accepts that and the
// file holds its bytes, from the start otherwise. valid is given the file:
// it may check those bytes. With hashed, they are hashed again into
// p.hash, the SHA-256 of the download. The caller closes p.f.
func (e *Engine) openPartial(key string, node crypto.NodeID, hashed bool, valid func(downloadProgress, io.ReaderAt) bool) (*partialDownload, error) {
	p := &partialDownload{key: key, name: filepath.Join(e.partial, key)}
	if hashed {
		p.hash = sha256.New()
	}
	if err := e.store.View(func(tx *cache.Tx) error {
		m, err := loadMap[downloadProgress](tx, metaDownloads)
		p.prog = m[key]
		return err
	}); err != nil {
		return nil, err
	}
	fresh := downloadProgress{Node: node.String()}
	f, err := os.OpenFile(p.name, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("partial download: %w", err)
	}
	p.f = f
	if fi, err := f.Stat(); err != nil || fi.Size() < p.prog.Bytes ||
		p.prog.Node != node.String() || !valid(p.prog, f) {
		p.prog = fresh
	}
	if p.prog.Parts > 0 && p.hash != nil {
		// Resume: the bytes written so far count towards the hash.
		if _, err := io.CopyN(p.hash, f, p.prog.Bytes); err != nil {
			p.prog = fresh
			p.hash.Reset()
		}
	}
	if err := f.Truncate(p.prog.Bytes); err != nil {
		f.Close()
		return nil, fmt.Errorf("partial download: %w", err)
	}
	if _, err := f.Seek(p.prog.Bytes, io.SeekStart); err != nil {
		f.Close()
		return nil, fmt.Errorf("partial download: %w", err)
	}
	return p, nil
}

// forgetPartial removes the partial file of p and its progress.
func (e *Engine) forgetPartial(p *partialDownload) {
	_ = os.Remove(p.name)
	_ = e.setDownload(p.key, nil)
}
