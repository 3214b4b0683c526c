package ftp

import (
	"errors"
	"io/fs"
	"net/textproto"
	"testing"

	"github.com/escalefs/escalefs/relay"
)

// The replies of FTP servers become the relay's sentinels; the servers'
// ways of saying "full" are relay.ErrQuota.
func TestTranslate(t *testing.T) {
	for _, tc := range []struct {
		code      int
		msg       string
		write     bool
		want      error // nil: none of the sentinels
		permanent bool
	}{
		{530, "Login authentication failed", false, relay.ErrAuth, true},
		{552, "Quota exceeded", true, relay.ErrQuota, true},
		{452, "Insufficient storage space", true, relay.ErrQuota, true},
		{451, "Error during write to file\nTransfer aborted", true, relay.ErrQuota, true}, // pure-ftpd, disk full
		{426, "Failure writing network stream.", true, nil, false},
		{451, "Rename/move failure: No space left on device", true, relay.ErrQuota, true},
		{451, "Error during read from file", false, nil, false},
		{550, "No such file or directory", false, fs.ErrNotExist, true},
		{550, "Can't create directory: Permission denied", true, fs.ErrPermission, true},
		{421, "Timeout", false, nil, false},
	} {
		err := translate(&textproto.Error{Code: tc.code, Msg: tc.msg}, tc.write)
		for _, s := range []error{relay.ErrAuth, relay.ErrQuota, fs.ErrNotExist, fs.ErrPermission} {
			want := s == tc.want || s == fs.ErrPermission && tc.want == relay.ErrAuth // ErrAuth is one
			if errors.Is(err, s) != want {
				t.Errorf("%d %q (write %v): %v; errors.Is %v = %v", tc.code, tc.msg, tc.write, err, s, errors.Is(err, s))
			}
		}
		if relay.IsPermanent(err) != tc.permanent {
			t.Errorf("%d %q (write %v): permanent %v, want %v", tc.code, tc.msg, tc.write, relay.IsPermanent(err), tc.permanent)
		}
	}
}
