package sftp

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"strings"
	"syscall"

	"github.com/pkg/sftp"

	"github.com/escalefs/escalefs/relay"
)

// translate turns a pkg/sftp error into one that carries the relay's
// sentinels:
//
//   - SSH_FX_NO_SUCH_FILE: fs.ErrNotExist; SSH_FX_PERMISSION_DENIED:
//     fs.ErrPermission (pkg/sftp maps both to the os errors already).
//   - a failure whose text speaks of a full disk or a quota (ENOSPC,
//     EDQUOT; servers other than OpenSSH say so): relay.ErrQuota.
//   - SSH_FX_OP_UNSUPPORTED: relay.ErrUnsupported.
//   - other server refusals: permanent, since the server answered and
//     will answer alike.
//   - a lost connection, and anything from the network: transient.
func translate(err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, fs.ErrPermission) {
		return err
	}
	var se *sftp.StatusError
	if errors.As(err, &se) {
		switch se.FxCode() {
		case sftp.ErrSSHFxConnectionLost, sftp.ErrSSHFxNoConnection:
			return relay.Transient(fmt.Errorf("the SFTP connection broke: %w", err))
		case sftp.ErrSSHFxOpUnsupported:
			return fmt.Errorf("%w by the server: %v", relay.ErrUnsupported, err)
		}
		if se.Code == sshFxNoSpaceOnFilesystem || se.Code == sshFxQuotaExceeded || isNoSpace(err.Error()) {
			return fmt.Errorf("%w: %v", relay.ErrQuota, err)
		}
		return relay.Permanent(err)
	}
	if errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT) {
		return fmt.Errorf("%w: %v", relay.ErrQuota, err)
	}
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, net.ErrClosed) {
		return relay.Transient(fmt.Errorf("the server closed the connection: %w", err))
	}
	if c := relay.ClassifyNetError(err); c != err {
		return c
	}
	return relay.Transient(err)
}

// isNoSpace reports whether a server message speaks of a full disk or an
// exhausted quota.
// The status codes of SFTP version 5 and later (draft-ietf-secsh-filexfer
// -13, 9.1) that mean the server has no room. OpenSSH speaks version 3,
// where a full disk is SSH_FX_FAILURE with a message; other servers send
// these.
const (
	sshFxNoSpaceOnFilesystem = 14
	sshFxQuotaExceeded       = 15
)

func isNoSpace(msg string) bool {
	m := strings.ToLower(msg)
	for _, s := range []string{"no space", "quota", "disk full", "enospc", "edquot", "insufficient storage"} {
		if strings.Contains(m, s) {
			return true
		}
	}
	return false
}

// connBroken reports whether err leaves the connection unusable: anything
// but a refusal from the server (a status reply).
func connBroken(err error) bool {
	var ce *callerError
	if errors.As(err, &ce) {
		return false
	}
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, fs.ErrPermission) || errors.Is(err, relay.ErrQuota) ||
		errors.Is(err, relay.ErrUnsupported) || errors.Is(err, relay.ErrInvalidName) {
		return false
	}
	var se *sftp.StatusError
	if errors.As(err, &se) {
		c := se.FxCode()
		return c == sftp.ErrSSHFxConnectionLost || c == sftp.ErrSSHFxNoConnection
	}
	return true
}

// callerError is an error returned by a Get or List callback, passed
// through unchanged; the connection is fine.
type callerError struct{ err error }

func (e *callerError) Error() string { return e.err.Error() }
func (e *callerError) Unwrap() error { return e.err }
