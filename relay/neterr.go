package relay

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"syscall"
)

// ClassifyNetError marks network-level failures with the sentinel that says
// what probably went wrong: ErrTLS for handshake and certificate failures
// (permanent), ErrUnreachable for name resolution and refused or timed-out
// connections (transient: the host may come back). Other errors are returned
// unchanged. Backends call it on errors from dialling and transfers.
func ClassifyNetError(err error) error {
	if err == nil || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	var (
		unknownAuth x509.UnknownAuthorityError
		hostErr     x509.HostnameError
		certInvalid x509.CertificateInvalidError
		recordErr   tls.RecordHeaderError
		alert       tls.AlertError
		certVerify  *tls.CertificateVerificationError
		dnsErr      *net.DNSError
	)
	switch {
	case errors.Is(err, ErrTLS):
		return Permanent(err)
	case errors.As(err, &unknownAuth), errors.As(err, &hostErr), errors.As(err, &certInvalid),
		errors.As(err, &certVerify):
		return Permanent(fmt.Errorf("%w: %v", ErrTLS, err))
	case errors.As(err, &recordErr), errors.As(err, &alert):
		return Permanent(fmt.Errorf("%w: %v", ErrTLS, err))
	case errors.As(err, &dnsErr):
		return Transient(fmt.Errorf("%w: %v", ErrUnreachable, err))
	case errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.EHOSTUNREACH),
		errors.Is(err, syscall.ENETUNREACH):
		return Transient(fmt.Errorf("%w: %v", ErrUnreachable, err))
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return Transient(fmt.Errorf("%w: %v", ErrUnreachable, err))
	}
	return err
}
