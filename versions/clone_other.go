//go:build !linux

package versions

import (
	"errors"
	"os"
)

// clone is not done here: the caller copies.
func clone(dst, src *os.File) error { return errors.ErrUnsupported }

// linkOpen is not done here: the caller copies.
func linkOpen(src *os.File, dst string) error { return errors.ErrUnsupported }
