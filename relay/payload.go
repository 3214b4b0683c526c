package relay

import (
	"bytes"
	"context"
	"fmt"
	"io"
)

// BytesPayload returns a Payload over b. b must not change during the Put.
func BytesPayload(b []byte) Payload {
	return &readerAtPayload{r: bytes.NewReader(b), size: int64(len(b))}
}

// ReaderAtPayload returns a Payload over the first size bytes of r, e.g. an
// *os.File. Reading goes through ReadAt, so r's own offset is untouched.
func ReaderAtPayload(r io.ReaderAt, size int64) Payload {
	return &readerAtPayload{r: r, size: size}
}

type readerAtPayload struct {
	r    io.ReaderAt
	size int64
	sec  *io.SectionReader
}

func (p *readerAtPayload) Read(b []byte) (int, error) {
	if p.sec == nil {
		p.sec = io.NewSectionReader(p.r, 0, p.size)
	}
	return p.sec.Read(b)
}

func (p *readerAtPayload) Length() int64 { return p.size }

func (p *readerAtPayload) Rewind() error {
	p.sec = io.NewSectionReader(p.r, 0, p.size)
	return nil
}

// Seek lets HTTP clients that look for io.Seeker stream the payload without
// buffering it.
func (p *readerAtPayload) Seek(offset int64, whence int) (int64, error) {
	if p.sec == nil {
		p.sec = io.NewSectionReader(p.r, 0, p.size)
	}
	return p.sec.Seek(offset, whence)
}

// CheckedReader wraps a payload so that a payload yielding more or fewer
// bytes than its Length is reported as an error instead of storing a short
// or long object. Such errors are permanent. Backends that stream a payload
// to a server use it.
func CheckedReader(p Payload) io.Reader {
	return &checkedReader{p: p, left: p.Length()}
}

type checkedReader struct {
	p    Payload
	left int64
}

func (c *checkedReader) Read(b []byte) (int, error) {
	if int64(len(b)) > c.left+1 {
		b = b[:c.left+1]
	}
	n, err := c.p.Read(b)
	c.left -= int64(n)
	if c.left < 0 {
		return n, Permanent(fmt.Errorf("payload is longer than its declared length %d", c.p.Length()))
	}
	if err == io.EOF && c.left > 0 {
		return n, Permanent(fmt.Errorf("payload ended %d bytes before its declared length %d: %w", c.left, c.p.Length(), io.ErrUnexpectedEOF))
	}
	return n, err
}

// ReadAll reads the object name whole through get (a Relay's Get), at
// most limit+1 bytes of it: a result longer than limit tells the caller
// that the object is larger than it accepts. Errors are Get's.
func ReadAll(ctx context.Context, get func(ctx context.Context, name string, offset, length int64, fn func(io.Reader) error) error,
	name string, limit int64) ([]byte, error) {
	var data []byte
	err := get(ctx, name, 0, limit+1, func(rd io.Reader) error {
		var err error
		data, err = io.ReadAll(rd)
		return err
	})
	return data, err
}
