package gdrive

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"net/http"
	"strconv"
	"time"

	"golang.org/x/oauth2"
	"google.golang.org/api/googleapi"

	"github.com/escalefs/escalefs/relay"
)

// apiCode returns the HTTP status and first error reason of a Drive
// answer, or 0 for an error that is not one.
func apiCode(err error) (code int, reason string, ge *googleapi.Error) {
	if errors.As(err, &ge) {
		if len(ge.Errors) > 0 {
			reason = ge.Errors[0].Reason
		}
		return ge.Code, reason, ge
	}
	return 0, "", nil
}

// rateLimitReasons are the 403 reasons that mean "slow down".
var rateLimitReasons = map[string]bool{
	"rateLimitExceeded":     true,
	"userRateLimitExceeded": true,
}

// quotaReasons are the 403 reasons that mean "no more room".
var quotaReasons = map[string]bool{
	"storageQuotaExceeded":              true,
	"quotaExceeded":                     true,
	"teamDriveFileLimitExceeded":        true,
	"numChildrenInNonRootLimitExceeded": true,
	"activeItemCreationLimitExceeded":   true,
	"teamDriveHierarchyTooDeep":         true,
}

// retryable reports whether Drive asked to try again later: rate limits and
// server errors. Network errors are left to the generic retry wrapper.
func retryable(err error) bool {
	code, reason, _ := apiCode(err)
	switch {
	case code == http.StatusTooManyRequests, code == http.StatusRequestTimeout, code >= 500:
		return true
	case code == http.StatusForbidden:
		return rateLimitReasons[reason]
	}
	return false
}

// classify turns a Drive client error into the relay's sentinels.
func classify(err error) error {
	if err == nil || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	code, reason, ge := apiCode(err)
	if ge != nil {
		msg := ge.Message
		if msg == "" && len(ge.Errors) > 0 {
			msg = ge.Errors[0].Message
		}
		what := fmt.Sprintf("Drive answered %d", code)
		if reason != "" {
			what += " " + reason
		}
		if msg != "" {
			what += ": " + msg
		}
		switch {
		case code == http.StatusUnauthorized:
			return relay.Permanent(fmt.Errorf("%w (%s)", relay.ErrAuth, what))
		case code == http.StatusNotFound:
			return relay.Permanent(fmt.Errorf("%w (%s)", fs.ErrNotExist, what))
		case code == http.StatusForbidden && quotaReasons[reason]:
			return relay.Permanent(fmt.Errorf("%w (%s)", relay.ErrQuota, what))
		case retryable(err):
			return relay.Transient(errors.New(what))
		case code == http.StatusForbidden && reason == "dailyLimitExceeded":
			return relay.Permanent(errors.New(what))
		case code == http.StatusForbidden:
			return relay.Permanent(fmt.Errorf("%w (%s)", fs.ErrPermission, what))
		}
		return relay.Permanent(errors.New(what))
	}
	var re *oauth2.RetrieveError
	if errors.As(err, &re) {
		from := ""
		var te *tokenError
		if errors.As(err, &te) {
			from = " from " + te.file
		}
		if re.Response != nil && re.Response.StatusCode >= 500 {
			return relay.Transient(fmt.Errorf("the OAuth token endpoint failed: %v", re))
		}
		return relay.Permanent(fmt.Errorf("%w: the token endpoint refused the credentials%s: %v", relay.ErrAuth, from, re))
	}
	var te *tokenError
	if errors.As(err, &te) {
		// Reaching the token endpoint failed: a network error, classified
		// as such, labelled with the file.
		return fmt.Errorf("getting an access token with %s: %w", te.file, relay.ClassifyNetError(te.err))
	}
	return relay.ClassifyNetError(err)
}

func isNotExist(err error) bool { return errors.Is(err, fs.ErrNotExist) }

// retry runs fn until it succeeds, fails for good, or r.attempts tries were
// made, pausing with exponential backoff and jitter (or as Retry-After
// asks) after rate-limit and server-error answers. The error is fn's own,
// unclassified.
func (r *Relay) retry(ctx context.Context, fn func() error) error {
	for attempt := 1; ; attempt++ {
		err := fn()
		if err == nil || !retryable(err) || attempt >= r.attempts || ctx.Err() != nil {
			return err
		}
		pause := r.backoff(attempt, err)
		code, reason, _ := apiCode(err)
		r.log.Debug("gdrive: retrying", "status", code, "reason", reason, "attempt", attempt, "pause", pause)
		t := time.NewTimer(pause)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("%w (while waiting to retry after: %v)", ctx.Err(), classify(err))
		case <-t.C:
		}
	}
}

// backoff is the pause before try attempt+1: a random duration up to
// RetryBase·2^(attempt-1), capped at 32s, or Retry-After when the server
// gave one.
func (r *Relay) backoff(attempt int, err error) time.Duration {
	if _, _, ge := apiCode(err); ge != nil && ge.Header != nil {
		if s, perr := strconv.Atoi(ge.Header.Get("Retry-After")); perr == nil && s > 0 {
			return min(time.Duration(s)*time.Second, time.Minute)
		}
	}
	ceil := r.retryBase << min(attempt-1, 16)
	ceil = min(ceil, 32*time.Second)
	return ceil/2 + rand.N(ceil/2+1)
}
