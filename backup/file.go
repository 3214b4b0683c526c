package backup

import (
	"bufio"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// Compressed reports whether an archive name asks for gzip compression
// (.tar.gz, .tgz).
func Compressed(name string) bool {
	n := strings.ToLower(name)
	return strings.HasSuffix(n, ".gz") || strings.HasSuffix(n, ".tgz")
}

// Output is an archive being written: to a temporary file next to its
// final name, renamed over it by Commit, or to standard output.
type Output struct {
	io.Writer
	path string
	f    *os.File
	gz   *gzip.Writer
}

// Create starts an archive named path ("-": stdout), gzip-compressed when
// its name says so. Nothing appears at path before Commit.
func Create(path string, stdout io.Writer) (*Output, error) {
	o := &Output{path: path}
	var w io.Writer = stdout
	if path != "-" {
		f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*.partial")
		if err != nil {
			return nil, fmt.Errorf("creating the archive: %w", err)
		}
		o.f, w = f, f
	}
	if path != "-" && Compressed(path) {
		o.gz = gzip.NewWriter(w)
		w = o.gz
	}
	o.Writer = w
	return o, nil
}

// Commit flushes the archive and puts it in place.
func (o *Output) Commit() error {
	if o.gz != nil {
		if err := o.gz.Close(); err != nil {
			o.Abort()
			return fmt.Errorf("writing the archive: %w", err)
		}
	}
	if o.f == nil {
		return nil
	}
	err := o.f.Sync()
	if cerr := o.f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(o.f.Name(), o.path)
	}
	if err != nil {
		os.Remove(o.f.Name())
		return fmt.Errorf("writing the archive %s: %w", o.path, err)
	}
	return nil
}

// Abort removes what was written.
func (o *Output) Abort() {
	if o.f != nil {
		o.f.Close()
		os.Remove(o.f.Name())
	}
}

// Archive is an archive opened for restore: a seekable plain tar.
type Archive struct {
	io.ReaderAt
	Size  int64
	f     *os.File
	spool bool
}

// Open opens the archive at path for Verify and Restore. A plain tar file
// is read in place; standard input ("-", read from stdin) and gzip
// archives (recognised by their content) are first copied, uncompressed,
// to a temporary file in tempDir ("" for the system's), removed by Close.
func Open(path string, stdin io.Reader, tempDir string) (*Archive, error) {
	var src io.Reader = stdin
	if path != "-" {
		f, err := os.Open(path)
		if err != nil {
			return nil, fmt.Errorf("opening the archive: %w", err)
		}
		var magic [2]byte
		if _, err := io.ReadFull(f, magic[:]); err != nil || magic != [2]byte{0x1f, 0x8b} {
			st, serr := f.Stat()
			if serr != nil {
				f.Close()
				return nil, fmt.Errorf("opening the archive: %w", serr)
			}
			return &Archive{ReaderAt: f, Size: st.Size(), f: f}, nil
		}
		defer f.Close()
		if _, err := f.Seek(0, io.SeekStart); err != nil {
			return nil, fmt.Errorf("reading the archive: %w", err)
		}
		src = f
	}
	br := bufio.NewReader(src)
	if magic, err := br.Peek(2); err == nil && magic[0] == 0x1f && magic[1] == 0x8b {
		gz, err := gzip.NewReader(br)
		if err != nil {
			return nil, fmt.Errorf("%w: gzip: %v", ErrCorrupt, err)
		}
		src = gz
	} else {
		src = br
	}
	tmp, err := os.CreateTemp(tempDir, "escalefs-restore-*.tar")
	if err != nil {
		return nil, fmt.Errorf("spooling the archive: %w", err)
	}
	a := &Archive{ReaderAt: tmp, f: tmp, spool: true}
	a.Size, err = io.Copy(tmp, src)
	if err != nil {
		a.Close()
		if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, gzip.ErrChecksum) || errors.Is(err, gzip.ErrHeader) {
			return nil, fmt.Errorf("%w: gzip stream: %v", ErrCorrupt, err)
		}
		return nil, fmt.Errorf("spooling the archive to %s: %w", tmp.Name(), err)
	}
	return a, nil
}

// Close closes the archive and removes its temporary copy.
func (a *Archive) Close() error {
	err := a.f.Close()
	if a.spool {
		os.Remove(a.f.Name())
	}
	return err
}
