package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"strings"

	"golang.org/x/crypto/ssh"

	"github.com/escalefs/escalefs/relay"
	"github.com/escalefs/escalefs/relay/all"
	"github.com/escalefs/escalefs/relay/sftp"
)

// askRelayLogin asks, on a terminal, for what the relay u needs to log in
// and the flags do not give: a password for ftp and webdav, a password or
// nothing (ssh-agent, a key) for sftp, the endpoint and the access key for
// s3, the credentials file for gdrive. A secret goes to pwFile (mode 0600), which rf then names. It may add
// the access key ID to u as its user name.
func askRelayLogin(p *prompter, out io.Writer, u *url.URL, rf *relayFlags, pwFile string) error {
	ask := rf.passwordFile == "" && rf.netrcFile == ""
	question := "Relay password (empty if ~/.netrc has it)"
	switch u.Scheme {
	case "file":
		return nil
	case "gdrive":
		return askGdriveCredentials(p, rf)
	case "sftp":
		question = "SSH password (empty to log in with ssh-agent or an SSH key)"
	case "s3":
		if rf.s3Endpoint == "" && os.Getenv("AWS_ENDPOINT_URL") == "" {
			ep, err := p.ask("S3 endpoint URL, e.g. https://s3.example.org or http://127.0.0.1:9000 (empty for Amazon S3)", "")
			if err != nil {
				return err
			}
			rf.s3Endpoint = strings.TrimSpace(ep)
		}
		if u.User == nil && rf.credentialsFile == "" {
			id, err := p.ask("S3 access key ID (empty to use $AWS_ACCESS_KEY_ID or ~/.aws/credentials)", "")
			if err != nil {
				return err
			}
			if id = strings.TrimSpace(id); id != "" {
				u.User = url.User(id)
			}
		}
		ask = ask && u.User != nil
		question = "S3 secret access key"
	}
	if !ask {
		return nil
	}
	pw, err := p.hidden(question)
	if err != nil || pw == "" {
		return err
	}
	if err := writePrivate(pwFile, []byte(pw+"\n")); err != nil {
		return err
	}
	rf.passwordFile = pwFile
	fmt.Fprintf(out, "The secret is in %s (mode 0600).\n", pwFile)
	return nil
}

// askHostKey connects to an sftp relay once. If known_hosts does not know
// the server, it shows the host key's fingerprint and asks whether to trust
// it, as ssh does on a first connection; a trusted key is pinned in rf
// (host-key-sha256). Any other failure is left to the relay check that
// follows, which explains it.
func askHostKey(ctx context.Context, p *prompter, out io.Writer, rawURL string, rf *relayFlags, opts relay.Options) error {
	r, err := all.Open(ctx, rawURL, opts)
	if err == nil {
		return r.Close()
	}
	var he *sftp.HostKeyError
	if !errors.As(err, &he) || len(he.Known) > 0 || he.Revoked || he.Pin != "" {
		return nil
	}
	fp := ssh.FingerprintSHA256(he.Key)
	fmt.Fprintf(out, "The SSH server %s is not in known_hosts (%s).\n"+
		"It presented the %s key %s.\n"+
		"On the server, ssh-keygen -lf on its host key's .pub file (in /etc/ssh) prints the fingerprint to compare.\n",
		he.Addr, strings.Join(he.Files, ", "), he.Key.Type(), fp)
	a, err := p.ask("Trust this key? It is then pinned in the configuration as host-key-sha256 (yes/no)", "no")
	if err != nil {
		return err
	}
	if a = strings.ToLower(strings.TrimSpace(a)); a != "yes" && a != "y" {
		return fmt.Errorf("the host key %s of %s was not trusted: nothing was set up", fp, he.Addr)
	}
	rf.hostKeySHA256 = fp
	return nil
}

// askGdriveCredentials asks for the Google Drive credentials file unless
// --credentials or $GOOGLE_APPLICATION_CREDENTIALS gives one, offering the
// token escalefs auth gdrive wrote. Without an answer the relay check says
// what is missing.
func askGdriveCredentials(p *prompter, rf *relayFlags) error {
	if rf.credentialsFile != "" || os.Getenv("GOOGLE_APPLICATION_CREDENTIALS") != "" {
		return nil
	}
	def := ""
	if tok, err := defaultGdriveTokenPath(); err == nil {
		if _, err := os.Stat(tok); err == nil {
			def = tok
		}
	}
	q := "Google Drive credentials file: the token escalefs auth gdrive writes, or a service-account key"
	if def == "" {
		q += " (none yet: run escalefs auth gdrive first)"
	}
	f, err := p.ask(q, def)
	if err != nil {
		return err
	}
	rf.credentialsFile = strings.TrimSpace(f)
	return nil
}
