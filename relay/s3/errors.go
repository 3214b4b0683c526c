package s3

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"

	"github.com/minio/minio-go/v7"

	"github.com/escalefs/escalefs/relay"
)

// ResponseError is an error answer of the S3 store: its HTTP status, S3
// error code and message, and the sentinel it was translated to
// (fs.ErrNotExist, relay.ErrAuth, relay.ErrQuota, or nil).
type ResponseError struct {
	Status  int
	Code    string
	Message string
	Kind    error
}

// Error returns the sentinel's text, if any, and the store's answer.
func (e *ResponseError) Error() string {
	s := fmt.Sprintf("S3 error %s (HTTP %d)", e.Code, e.Status)
	if e.Message != "" {
		s += ": " + e.Message
	}
	if e.Kind == nil {
		return s
	}
	return fmt.Sprintf("%v: %s", e.Kind, s)
}

// Unwrap returns the sentinel, so that errors.Is matches it.
func (e *ResponseError) Unwrap() error { return e.Kind }

// S3 error codes that get a meaning here; minio-go has no exported names
// for most of them.
var (
	notFoundCodes = map[string]bool{"NoSuchKey": true, "NotFound": true}
	authCodes     = map[string]bool{
		"InvalidAccessKeyId": true, "SignatureDoesNotMatch": true, "AccessDenied": true,
		"ExpiredToken": true, "InvalidToken": true, "TokenRefreshRequired": true,
		"InvalidSecurity": true, "AuthorizationHeaderMalformed": true,
		"AccountProblem": true, "AllAccessDisabled": true,
	}
	quotaCodes = map[string]bool{
		"QuotaExceeded": true, "EntityTooLarge": true, "XMinioStorageFull": true,
		"StorageFull": true, "XMinioAdminBucketQuotaExceeded": true,
	}
	transientCodes = map[string]bool{
		"SlowDown": true, "ServiceUnavailable": true, "InternalError": true,
		"RequestTimeout": true, "OperationAborted": true,
		"XMinioServerNotInitialized": true,
	}
)

// translate turns a minio-go error into one carrying the relay's sentinels
// and permanent/transient marks:
//   - NoSuchKey: fs.ErrNotExist; NoSuchBucket: a permanent error naming the
//     bucket and the endpoint.
//   - InvalidAccessKeyId, SignatureDoesNotMatch, AccessDenied and other
//     credential refusals: relay.ErrAuth, naming where the credentials came
//     from.
//   - PreconditionFailed (412, a conditional put onto an existing key):
//     fs.ErrExist.
//   - QuotaExceeded, EntityTooLarge, a full store and HTTP 507:
//     relay.ErrQuota.
//   - SlowDown, 429, 5xx and other busy answers: transient; other answers:
//     permanent.
//   - network errors: relay.ClassifyNetError, with the endpoint named when
//     it cannot be reached.
func (r *Relay) translate(err error) error {
	if err == nil || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	var already *ResponseError
	if errors.As(err, &already) {
		return err
	}
	var er minio.ErrorResponse
	if !errors.As(err, &er) || (er.Code == "" && er.StatusCode == 0) {
		if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
			return relay.Transient(fmt.Errorf("the S3 store closed the connection: %w", err))
		}
		err = relay.ClassifyNetError(err)
		if errors.Is(err, relay.ErrUnreachable) {
			return relay.Transient(fmt.Errorf("S3 endpoint %s cannot be reached: %w", r.endpoint, err))
		}
		return err
	}
	re := &ResponseError{Status: er.StatusCode, Code: er.Code, Message: er.Message}
	switch {
	case er.Code == "NoSuchBucket":
		return r.noBucket()
	case notFoundCodes[er.Code]:
		re.Kind = fs.ErrNotExist
		return re
	case authCodes[er.Code]:
		re.Kind = relay.ErrAuth
		return relay.Permanent(fmt.Errorf("the S3 store at %s refused %s for bucket %q: %w",
			r.endpoint, r.credFrom, r.bucket, re))
	case er.Code == "PreconditionFailed" || er.StatusCode == http.StatusPreconditionFailed:
		re.Kind = fs.ErrExist // a conditional put onto an existing key
		return re
	case quotaCodes[er.Code] || er.StatusCode == http.StatusInsufficientStorage:
		re.Kind = relay.ErrQuota
		return relay.Permanent(re)
	case transientCodes[er.Code] || er.StatusCode == http.StatusTooManyRequests ||
		er.StatusCode == http.StatusRequestTimeout || er.StatusCode >= 500:
		return relay.Transient(re)
	}
	return relay.Permanent(re)
}

// noBucket is the error for a bucket that does not exist.
func (r *Relay) noBucket() error {
	return relay.Permanent(fmt.Errorf("bucket %q does not exist at %s: create it first", r.bucket, r.endpoint))
}

// isCode reports whether err is an S3 answer with that error code.
func isCode(err error, code string) bool {
	var er minio.ErrorResponse
	return errors.As(err, &er) && er.Code == code
}
