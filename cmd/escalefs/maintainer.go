package main

import (
	"bytes"
	"errors"
	"fmt"
	"mime"
	"net"
	"net/mail"
	"net/smtp"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/pflag"
)

// smtpAddr is the SMTP server through which --maintainer is told that a
// node stopped; tests point it elsewhere.
var smtpAddr = "localhost:25"

// Bounds on telling the maintainer, so that a server that hangs does not
// keep a stopped node from exiting.
const (
	smtpDialTimeout = 10 * time.Second
	smtpTimeout     = 30 * time.Second
)

// maintainerSentName is the file, in the node's state directory, that
// holds the last error the maintainer was told of; the same error is not
// told again within maintainerQuiet, so that a service restarted on failure
// does not send a message at every restart.
const (
	maintainerSentName = "maintainer.sent"
	maintainerQuiet    = 24 * time.Hour
)

// registerMaintainer adds --maintainer, which sets *to, to fl.
func registerMaintainer(fl *pflag.FlagSet, to *string) {
	fl.Var(maintainerValue{to}, "maintainer",
		"email `ADDRESS` to tell, through the SMTP server on localhost:25, when the node stops on an error it cannot recover from")
}

// maintainerValue is the value of --maintainer: an email address.
type maintainerValue struct{ to *string }

func (v maintainerValue) String() string {
	if v.to == nil {
		return ""
	}
	return *v.to
}

func (v maintainerValue) Set(s string) error {
	a, err := mail.ParseAddress(s)
	if err != nil || a.Name != "" {
		return errors.New("expected an email address, such as admin@example.org")
	}
	*v.to = a.Address
	return nil
}

func (maintainerValue) Type() string { return "ADDRESS" }

// stopped tells the maintainer, if --maintainer is given, that the node
// stops on err, which retrying cannot fix, and returns err. folder is the
// synced folder or the mountpoint.
func (n *node) stopped(folder string, err error) error {
	to := n.f.maintainer
	if to == "" || err == nil {
		return err
	}
	log := n.log
	sentFile := ""
	if n.state != "" {
		sentFile = filepath.Join(n.state, maintainerSentName)
		if fi, serr := os.Stat(sentFile); serr == nil && time.Since(fi.ModTime()) < maintainerQuiet {
			if last, rerr := os.ReadFile(sentFile); rerr == nil && string(last) == err.Error()+"\n" {
				log.Info("the maintainer was told of this error already", "to", to, "at", fi.ModTime().Format(time.RFC3339))
				return err
			}
		}
	}
	host, herr := os.Hostname()
	if herr != nil || host == "" {
		host = "localhost"
	}
	msg := noticeMessage(notice{
		From: "escalefs@" + host, To: to, Node: n.name, Command: n.f.command, Err: err,
		Relay: n.loc, Folder: folder, State: n.state, Time: time.Now(),
	})
	switch serr := sendMail(smtpAddr, "escalefs@"+host, to, msg); {
	case errors.Is(serr, syscall.ECONNREFUSED):
		log.Warn("could not tell the maintainer: no SMTP server on "+smtpAddr, "to", to, "err", serr)
	case serr != nil:
		log.Warn("could not tell the maintainer through "+smtpAddr, "to", to, "err", serr)
	default:
		log.Info("told the maintainer", "to", to)
		if sentFile != "" {
			if werr := os.WriteFile(sentFile, []byte(err.Error()+"\n"), 0o600); werr != nil {
				log.Warn("recording that the maintainer was told", "err", werr)
			}
		}
	}
	return err
}

// notice is what the maintainer is told.
type notice struct {
	From, To      string
	Node          string
	Command       string // sync or mount
	Err           error
	Relay         string
	Folder, State string
	Time          time.Time
}

// noticeMessage returns the plain-text message that tells the maintainer
// of nt.
func noticeMessage(nt notice) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "From: %s\n", nt.From)
	fmt.Fprintf(&b, "To: %s\n", nt.To)
	fmt.Fprintf(&b, "Subject: %s\n", mime.QEncoding.Encode("utf-8", "escalefs: node "+nt.Node+" stopped"))
	fmt.Fprintf(&b, "Date: %s\n", nt.Time.Format(time.RFC1123Z))
	b.WriteString("MIME-Version: 1.0\nContent-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: 8bit\n\n")
	fmt.Fprintf(&b, "The escalefs node %s stopped on an error that retrying cannot fix:\n\n", nt.Node)
	for _, line := range strings.Split(nt.Err.Error(), "\n") {
		fmt.Fprintf(&b, "    %s\n", line)
	}
	b.WriteString("\n")
	what := "Folder"
	if nt.Command == "mount" {
		what = "Mountpoint"
	}
	for _, kv := range [][2]string{
		{"Command", "escalefs " + nt.Command},
		{"Relay", nt.Relay},
		{what, nt.Folder},
		{"State dir", nt.State},
		{"Time", nt.Time.Format(time.RFC3339)},
	} {
		fmt.Fprintf(&b, "%-11s %s\n", kv[0]+":", kv[1])
	}
	b.WriteString("\nescalefs status shows what the node has yet to push. Restart the node once the cause is fixed.\n")
	return b.Bytes()
}

// sendMail sends msg (lines ending in \n) from from to to through the SMTP
// server at addr, without authentication or TLS: the server is a local one
// that relays the message on.
func sendMail(addr, from, to string, msg []byte) error {
	conn, err := net.DialTimeout("tcp", addr, smtpDialTimeout)
	if err != nil {
		return err
	}
	defer conn.Close()
	if err := conn.SetDeadline(time.Now().Add(smtpTimeout)); err != nil {
		return err
	}
	host, _, _ := net.SplitHostPort(addr)
	c, err := smtp.NewClient(conn, host)
	if err != nil {
		return err
	}
	defer c.Close()
	if h, err := os.Hostname(); err == nil && h != "" {
		if err := c.Hello(h); err != nil {
			return err
		}
	}
	if err := c.Mail(from); err != nil {
		return err
	}
	if err := c.Rcpt(to); err != nil {
		return err
	}
	w, err := c.Data()
	if err != nil {
		return err
	}
	if _, err := w.Write(msg); err != nil {
		return err
	}
	if err := w.Close(); err != nil {
		return err
	}
	return c.Quit()
}
