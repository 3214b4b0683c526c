package ftp

import (
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/textproto"
	"strings"
	"syscall"

	"github.com/escalefs/escalefs/relay"
)

// ReplyError is a refusal from the FTP server: its reply code and text,
// and the sentinel it was translated to (fs.ErrNotExist, fs.ErrPermission,
// relay.ErrAuth, relay.ErrQuota, or nil).
type ReplyError struct {
	Code int
	Msg  string
	Kind error
}

// Error returns the sentinel's text, if any, and the server's reply.
func (e *ReplyError) Error() string {
	if e.Kind == nil {
		return fmt.Sprintf("server replied %d %s", e.Code, e.Msg)
	}
	return fmt.Sprintf("%v: server replied %d %s", e.Kind, e.Code, e.Msg)
}

// Unwrap returns the sentinel, so that errors.Is matches it.
func (e *ReplyError) Unwrap() error { return e.Kind }

// translate turns a jlaffaye/ftp error into one that carries the relay's
// sentinels. write tells whether the command creates or changes something
// (STOR, MKD, RNTO, DELE), where 550 means "not allowed" rather than "not
// found".
//
//   - 530 (not logged in): relay.ErrAuth.
//   - 552 and 452 (storage exceeded), a reply that speaks of a quota or a
//     full disk, or a 451 to a write that says the server failed writing
//     (pure-ftpd's "451 Error during write to file" on a full disk, where
//     the disk is what fails): relay.ErrQuota.
//   - 550: fs.ErrNotExist, or fs.ErrPermission for writes; 553 (name not
//     allowed) and any reply that says "permission denied": fs.ErrPermission.
//   - other 4xx replies: transient; other 5xx replies: permanent.
//   - network errors: relay.ClassifyNetError.
func translate(err error, write bool) error {
	if err == nil {
		return nil
	}
	var te *textproto.Error
	if !errors.As(err, &te) {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return relay.Transient(fmt.Errorf("the server closed the connection: %w", err))
		}
		return relay.ClassifyNetError(err)
	}
	// Multi-line replies (pure-ftpd's quota report) become one line.
	lines := strings.Split(strings.TrimSpace(te.Msg), "\n")
	for i, l := range lines {
		lines[i] = strings.TrimSpace(l)
	}
	msg := strings.Join(lines, "; ")
	lower := strings.ToLower(msg)
	re := &ReplyError{Code: te.Code, Msg: msg}
	switch {
	case te.Code == 530:
		re.Kind = relay.ErrAuth
	case te.Code == 552 || te.Code == 452 || strings.Contains(lower, "quota") ||
		strings.Contains(lower, "disk full") || strings.Contains(lower, "no space left"),
		te.Code == 451 && write && (strings.Contains(lower, "error during write") || strings.Contains(lower, "write error")):
		re.Kind = relay.ErrQuota
	case te.Code == 553, te.Code == 550 && write, strings.Contains(lower, "permission denied"):
		// pure-ftpd answers "451 Rename/move failure: Permission
		// denied", which no retry will change.
		re.Kind = fs.ErrPermission
	case te.Code == 550:
		re.Kind = fs.ErrNotExist
	}
	switch {
	case re.Kind != nil:
		return re // the sentinels say whether to retry
	case te.Code >= 400 && te.Code < 500:
		return relay.Transient(re)
	default:
		return relay.Permanent(re)
	}
}

// isReply reports whether err is a refusal from the server (after
// translation).
func isReply(err error) bool {
	var re *ReplyError
	return errors.As(err, &re)
}

// replyCode returns the reply code of a (translated) refusal, or 0.
func replyCode(err error) int {
	var re *ReplyError
	if errors.As(err, &re) {
		return re.Code
	}
	return 0
}

// isNetError reports whether err came from the network or TLS layer rather
// than from the server's replies.
func isNetError(err error) bool {
	var (
		ne    net.Error
		errno syscall.Errno
		rec   tls.RecordHeaderError
		alert tls.AlertError
		cv    *tls.CertificateVerificationError
	)
	return errors.As(err, &ne) || errors.As(err, &errno) || errors.As(err, &rec) ||
		errors.As(err, &alert) || errors.As(err, &cv) ||
		errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, net.ErrClosed) ||
		errors.Is(err, relay.ErrTLS) || errors.Is(err, relay.ErrUnreachable)
}
