package s3

import (
	"fmt"
	"net/url"
	"os"

	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/escalefs/escalefs/relay"
)

func lookupEnv(k string) string { return os.Getenv(k) }

// credentialsFor picks the credentials of the first source that has any
// (see the package comment) and says which source that was, for error
// messages. With none, requests are sent unsigned, which a public bucket
// may accept.
func credentialsFor(u *url.URL, opts relay.Options, getenv func(string) string) (*credentials.Credentials, string, error) {
	if u.User != nil && u.User.Username() != "" {
		id, secret, err := opts.Credentials(u, "")
		if err != nil {
			return nil, "", err
		}
		if secret == "" {
			return nil, "", relay.Permanent(fmt.Errorf("%w: the URL names access key %q but no secret key was found (give it with --password-file or $%s)",
				relay.ErrAuth, id, relay.PasswordEnv))
		}
		return credentials.NewStaticV4(id, secret, ""), fmt.Sprintf("access key %q of the relay URL", id), nil
	}
	profile := getenv("AWS_PROFILE")
	if opts.CredentialsFile != "" {
		if _, err := os.Stat(opts.CredentialsFile); err != nil {
			return nil, "", relay.Permanent(fmt.Errorf("S3 credentials file: %w", err))
		}
		c := credentials.NewFileAWSCredentials(opts.CredentialsFile, profile)
		if _, err := c.GetWithContext(&credentials.CredContext{}); err != nil {
			return nil, "", relay.Permanent(fmt.Errorf("%w: S3 credentials file %s (profile %q): %v", relay.ErrAuth, opts.CredentialsFile, orDefault(profile, "default"), err))
		}
		return c, fmt.Sprintf("credentials file %s (profile %q)", opts.CredentialsFile, orDefault(profile, "default")), nil
	}
	id := orDefault(getenv("AWS_ACCESS_KEY_ID"), getenv("AWS_ACCESS_KEY"))
	secret := orDefault(getenv("AWS_SECRET_ACCESS_KEY"), getenv("AWS_SECRET_KEY"))
	if id != "" && secret != "" {
		return credentials.NewStaticV4(id, secret, getenv("AWS_SESSION_TOKEN")), "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY", nil
	}
	// The shared AWS files; an empty file name makes minio-go merge
	// ~/.aws/config and ~/.aws/credentials (or $AWS_CONFIG_FILE and
	// $AWS_SHARED_CREDENTIALS_FILE) as the AWS SDK does.
	c := credentials.NewFileAWSCredentials("", profile)
	if v, err := c.GetWithContext(&credentials.CredContext{}); err == nil && v.AccessKeyID != "" {
		return c, fmt.Sprintf("the shared AWS credentials (profile %q)", orDefault(profile, "default")), nil
	}
	return credentials.NewStatic("", "", "", credentials.SignatureAnonymous), "no credentials (none found in the URL, --credentials, AWS_ACCESS_KEY_ID or ~/.aws/credentials)", nil
}

func orDefault(s, d string) string {
	if s == "" {
		return d
	}
	return s
}
