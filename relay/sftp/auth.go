package sftp

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"os/user"
	"path/filepath"
	"strings"
	gosync "sync"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"

	"github.com/escalefs/escalefs/relay"
)

// AgentEnv is the environment variable naming ssh-agent's socket.
const AgentEnv = "SSH_AUTH_SOCK"

// defaultIdentities are the key files OpenSSH tries when none is given.
var defaultIdentities = []string{"id_ed25519", "id_ecdsa", "id_rsa"}

// authSetup holds what the client logs in with: ssh-agent's keys, the key
// file's, and the password.
type authSetup struct {
	agentSock string
	mu        gosync.Mutex
	agentConn net.Conn            // guarded by mu; nil until first used
	agent     agent.ExtendedAgent // guarded by mu
	keys      []ssh.Signer        // from the key file(s)
	keyFiles  []string            // the files keys came from, for messages
	pass      string
}

// newAuth loads the key file and notes the agent's socket. A key file
// protected by a passphrase is an error unless ssh-agent holds its key.
func newAuth(opts relay.Options, user, pass string) (*authSetup, error) {
	getenv := opts.Getenv
	if getenv == nil {
		getenv = os.Getenv
	}
	a := &authSetup{agentSock: getenv(AgentEnv), pass: pass}
	files := []string{opts.SSH.KeyFile}
	explicit := opts.SSH.KeyFile != ""
	if !explicit {
		files = nil
		if home := getenv("HOME"); home != "" {
			for _, n := range defaultIdentities {
				files = append(files, filepath.Join(home, ".ssh", n))
			}
		}
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			if !explicit && errors.Is(err, os.ErrNotExist) {
				continue
			}
			return nil, fmt.Errorf("reading SSH key file: %w", err)
		}
		s, err := ssh.ParsePrivateKey(b)
		var pm *ssh.PassphraseMissingError
		switch {
		case errors.As(err, &pm):
			if pm.PublicKey != nil && a.agentHas(pm.PublicKey) {
				continue // the agent signs with it
			}
			if !explicit {
				opts.Log().Debug("sftp: skipping a key file protected by a passphrase", "file", f)
				continue
			}
			return nil, fmt.Errorf("SSH key file %s is protected by a passphrase, which escalefs does not ask for: "+
				"load it into ssh-agent (ssh-add %s) and make sure $%s is set, or use a key without a passphrase", f, f, AgentEnv)
		case err != nil:
			if !explicit {
				opts.Log().Debug("sftp: skipping an unreadable key file", "file", f, "err", err)
				continue
			}
			return nil, fmt.Errorf("SSH key file %s: %w", f, err)
		}
		a.keys = append(a.keys, s)
		a.keyFiles = append(a.keyFiles, f)
	}
	return a, nil
}

// agentClient connects to ssh-agent once; nil when there is none.
func (a *authSetup) agentClient() agent.ExtendedAgent {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.agentSock == "" {
		return nil
	}
	if a.agent == nil {
		c, err := net.Dial("unix", a.agentSock)
		if err != nil {
			return nil
		}
		a.agentConn, a.agent = c, agent.NewClient(c)
	}
	return a.agent
}

// agentHas reports whether ssh-agent holds key.
func (a *authSetup) agentHas(key ssh.PublicKey) bool {
	ag := a.agentClient()
	if ag == nil {
		return false
	}
	list, err := ag.List()
	if err != nil {
		return false
	}
	for _, k := range list {
		if bytes.Equal(k.Marshal(), key.Marshal()) {
			return true
		}
	}
	return false
}

// methods returns the authentication methods in OpenSSH's order. The agent's
// keys and the key file's are one method: the SSH client tries a method
// name only once.
func (a *authSetup) methods() []ssh.AuthMethod {
	m := []ssh.AuthMethod{ssh.PublicKeysCallback(func() ([]ssh.Signer, error) {
		var out []ssh.Signer
		if ag := a.agentClient(); ag != nil {
			if s, err := ag.Signers(); err == nil {
				out = append(out, s...)
			}
		}
		return append(out, a.keys...), nil
	})}
	if a.pass != "" {
		m = append(m, ssh.Password(a.pass))
	}
	return m
}

// describe lists what authentication tries, for error messages.
func (a *authSetup) describe() string {
	var parts []string
	if a.agentSock != "" {
		parts = append(parts, "the keys of ssh-agent")
	}
	if len(a.keyFiles) > 0 {
		parts = append(parts, "key file "+strings.Join(a.keyFiles, ", "))
	}
	if a.pass != "" {
		parts = append(parts, "a password")
	}
	if len(parts) == 0 {
		return "nothing: no ssh-agent ($" + AgentEnv + " unset), no key file (--ssh-key) and no password"
	}
	return strings.Join(parts, ", then ")
}

func (a *authSetup) close() {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.agentConn != nil {
		a.agentConn.Close()
		a.agentConn, a.agent = nil, nil
	}
}

// localUser is the name of the user running escalefs, OpenSSH's default.
func localUser() string {
	if u, err := user.Current(); err == nil {
		return u.Username
	}
	return os.Getenv("USER")
}
