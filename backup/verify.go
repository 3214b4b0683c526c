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
	"io"
	"strings"

	"github.com/escalefs/escalefs/crypto"
	"github.com/escalefs/escalefs/relay"
)

// ErrCorrupt means that an archive is not a complete, intact escalefs
// backup. The error names the entry and what was expected.
var ErrCorrupt = errors.New("the archive is corrupt")

// maxManifestSize bounds the manifest read into memory (some 2 million
// objects).
const maxManifestSize = 256 << 20

// Entry is one verified object of an archive.
type Entry struct {
	Name   string
	Size   int64
	SHA256 [sha256.Size]byte
	offset int64 // of its content in the plain tar
}

// Index is the verified content of an archive.
type Index struct {
	Manifest Manifest
	// Config is the archive's escale.json.
	Config []byte
	// Entries are the objects in archive order.
	Entries []Entry
	// Bytes is the objects' total size.
	Bytes int64
}

// countingReader counts the bytes read through it, so that Verify knows
// where each entry's content starts in the plain tar.
type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(b []byte) (int, error) {
	n, err := c.r.Read(b)
	c.n += int64(n)
	return n, err
}

// Verify reads the whole plain (uncompressed) tar archive in ra and checks
// it: every entry a regular file with a valid object name of the
// repository, no name twice, the manifest last and well-formed, listing
// exactly the entries with their sizes and SHA-256, and an escale.json of
// the manifest's repository. Errors wrap ErrCorrupt and name the entry.
func Verify(ctx context.Context, ra io.ReaderAt, size int64) (*Index, error) {
	v := &verifier{cr: &countingReader{r: io.NewSectionReader(ra, 0, size)}, idx: &Index{}, seen: make(map[string]int), last: "the start"}
	tr := tar.NewReader(v.cr)
	for {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			if errors.Is(err, io.ErrUnexpectedEOF) {
				return nil, corrupt("truncated after %s (an entry header is cut short)", v.last)
			}
			return nil, corrupt("unreadable entry after %s: %v", v.last, err)
		}
		if err := v.entry(hdr, tr); err != nil {
			return nil, err
		}
	}
	if v.manifest == nil {
		if len(v.idx.Entries) == 0 {
			return nil, corrupt("no entries: not an escalefs backup, or cut off at its start")
		}
		return nil, corrupt("no manifest %s after %s: the archive is truncated or not an escalefs backup", ManifestName, v.last)
	}
	if err := checkManifest(v.idx, v.manifest, v.seen); err != nil {
		return nil, corrupt("%v", err)
	}
	return v.idx, nil
}

// corrupt is an error of an archive that is not a whole escalefs backup.
func corrupt(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrCorrupt}, args...)...)
}

// verifier is the state of one Verify.
type verifier struct {
	cr       *countingReader
	idx      *Index
	seen     map[string]int // entries by name: their index
	manifest []byte
	last     string // the last entry read, for errors
}

// entry checks the archive entry hdr, whose content tr reads, and indexes
// it (or keeps it: the manifest).
func (v *verifier) entry(hdr *tar.Header, tr io.Reader) error {
	name := hdr.Name
	if err := v.checkHeader(hdr); err != nil {
		return err
	}
	if name == ManifestName {
		if hdr.Size > maxManifestSize {
			return corrupt("manifest %s is %d bytes, more than %d", ManifestName, hdr.Size, maxManifestSize)
		}
		var err error
		if v.manifest, err = io.ReadAll(tr); err != nil {
			return corrupt("manifest %s: truncated: %v", ManifestName, err)
		}
		return nil
	}
	if err := checkName(name); err != nil {
		return corrupt("entry %q: %v", name, err)
	}
	if _, dup := v.seen[name]; dup {
		return corrupt("entry %q appears twice", name)
	}
	if name == crypto.ConfigName && hdr.Size > maxConfigSize {
		return corrupt("entry %q is %d bytes, more than an escale.json may have (%d)", name, hdr.Size, maxConfigSize)
	}
	start := v.cr.n
	h := sha256.New()
	var w io.Writer = h
	var config bytes.Buffer
	if name == crypto.ConfigName {
		w = io.MultiWriter(h, &config)
	}
	n, err := io.Copy(w, tr)
	if err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) {
			return corrupt("entry %q is truncated: %d bytes expected, %d present", name, hdr.Size, n)
		}
		return corrupt("entry %q: %v", name, err)
	}
	if v.cr.n != start+hdr.Size {
		return corrupt("entry %q is not stored as one contiguous file", name)
	}
	e := Entry{Name: name, Size: hdr.Size, offset: start}
	h.Sum(e.SHA256[:0])
	if name == crypto.ConfigName {
		v.idx.Config = config.Bytes()
	}
	v.seen[name] = len(v.idx.Entries)
	v.idx.Entries = append(v.idx.Entries, e)
	v.idx.Bytes += e.Size
	v.last = fmt.Sprintf("entry %q", name)
	return nil
}

// checkHeader refuses an entry after the manifest, of another type than a
// regular file, sparse, or of a negative size.
func (v *verifier) checkHeader(hdr *tar.Header) error {
	name := hdr.Name
	if v.manifest != nil {
		return corrupt("entry %q follows the manifest %s, which must be last", name, ManifestName)
	}
	if hdr.Typeflag != tar.TypeReg {
		return corrupt("entry %q is not a regular file (tar type %q)", name, hdr.Typeflag)
	}
	for k := range hdr.PAXRecords {
		if strings.HasPrefix(k, "GNU.sparse.") {
			return corrupt("entry %q is a sparse file", name)
		}
	}
	if hdr.Size < 0 {
		return corrupt("entry %q has a negative size", name)
	}
	return nil
}

// checkName accepts the object names a repository has.
func checkName(name string) error {
	if err := relay.ValidName(name); err != nil {
		return err
	}
	if !InRepository(name) {
		return errors.New("not an object of a repository (escale.json, nodes/…, blobs/…)")
	}
	return nil
}

func checkManifest(idx *Index, data []byte, seen map[string]int) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	m := &idx.Manifest
	if err := dec.Decode(m); err != nil {
		return fmt.Errorf("manifest %s is not valid: %v", ManifestName, err)
	}
	if len(bytes.TrimSpace(data[dec.InputOffset():])) > 0 {
		return fmt.Errorf("manifest %s: data after the JSON object", ManifestName)
	}
	if m.Format != ManifestFormat {
		return fmt.Errorf("manifest %s: format %q, expected %q", ManifestName, m.Format, ManifestFormat)
	}
	if m.Version != ManifestVersion {
		if m.Version > ManifestVersion {
			return fmt.Errorf("manifest %s: version %d is newer than this escalefs reads (%d); upgrade escalefs", ManifestName, m.Version, ManifestVersion)
		}
		return fmt.Errorf("manifest %s: version %d, expected %d", ManifestName, m.Version, ManifestVersion)
	}
	if m.Objects != len(m.Entries) {
		return fmt.Errorf("manifest %s: says %d objects but lists %d", ManifestName, m.Objects, len(m.Entries))
	}
	listed := make(map[string]bool, len(m.Entries))
	var total int64
	for _, me := range m.Entries {
		if listed[me.Name] {
			return fmt.Errorf("manifest %s lists %q twice", ManifestName, me.Name)
		}
		listed[me.Name] = true
		i, ok := seen[me.Name]
		if !ok {
			return fmt.Errorf("entry %q is listed in the manifest but missing from the archive", me.Name)
		}
		e := idx.Entries[i]
		if e.Size != me.Size {
			return fmt.Errorf("entry %q: %d bytes expected (manifest), got %d", me.Name, me.Size, e.Size)
		}
		if got := hex.EncodeToString(e.SHA256[:]); got != me.SHA256 {
			return fmt.Errorf("entry %q: SHA-256 %s expected (manifest), got %s", me.Name, me.SHA256, got)
		}
		total += e.Size
	}
	for _, e := range idx.Entries {
		if !listed[e.Name] {
			return fmt.Errorf("entry %q is not listed in the manifest", e.Name)
		}
	}
	if m.Bytes != total {
		return fmt.Errorf("manifest %s: says %d bytes, its entries hold %d", ManifestName, m.Bytes, total)
	}
	if idx.Config == nil {
		return fmt.Errorf("no %s in the archive", crypto.ConfigName)
	}
	cfg, err := crypto.ParseConfig(idx.Config)
	if err != nil {
		return fmt.Errorf("entry %q: %v", crypto.ConfigName, err)
	}
	if got := cfg.Repository.String(); got != m.Repository {
		return fmt.Errorf("entry %q is of repository %s, the manifest says %s", crypto.ConfigName, got, m.Repository)
	}
	return nil
}
