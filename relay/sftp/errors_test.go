package sftp

import (
	"errors"
	"fmt"
	"syscall"
	"testing"

	"github.com/pkg/sftp"

	"github.com/escalefs/escalefs/relay"
)

// Every answer that means "no room" is relay.ErrQuota: the status codes of
// newer SFTP versions, OpenSSH's failure text, and a local ENOSPC.
func TestTranslateNoSpace(t *testing.T) {
	for _, err := range []error{
		&sftp.StatusError{Code: sshFxNoSpaceOnFilesystem},
		&sftp.StatusError{Code: sshFxQuotaExceeded},
		fmt.Errorf("write: %w", syscall.ENOSPC),
		fmt.Errorf("write: %w", syscall.EDQUOT),
	} {
		if got := translate(err); !errors.Is(got, relay.ErrQuota) {
			t.Errorf("translate(%v) = %v, want relay.ErrQuota", err, got)
		}
	}
	if got := translate(&sftp.StatusError{Code: 2}); errors.Is(got, relay.ErrQuota) {
		t.Errorf("translate(no such file) = %v, want no quota error", got)
	}
}
