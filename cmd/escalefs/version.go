package main

import (
	"fmt"
	"regexp"
	"runtime/debug"

	"github.com/spf13/cobra"
)

// release is the version of this source tree. A build from a release tag
// (make build with git describe, or go install …@vX.Y.Z) reports the tag
// instead; any other build reports release with a -dev suffix.
const release = "0.11.0"

// version and commit are set at build time with
// -ldflags "-X main.version=… -X main.commit=…" (make build).
var (
	version = ""
	commit  = ""
)

// semver matches a semantic version, with or without its leading v.
var semver = regexp.MustCompile(`^v?(\d+\.\d+\.\d+(?:-[0-9A-Za-z.-]+)?(?:\+[0-9A-Za-z.-]+)?)$`)

// pseudoVersion matches the versions Go gives untagged commits
// (v0.0.0-20261206183000-116dd75cf12a).
var pseudoVersion = regexp.MustCompile(`-\d{14}-[0-9a-f]{12}$`)

// versionString returns the semantic version of this build, its commit
// and the Go version: "0.11.0 (commit 116dd75cf12a, go1.26.8)".
func versionString() string {
	info, _ := debug.ReadBuildInfo()
	return formatVersion(version, commit, info)
}

func formatVersion(ldVersion, ldCommit string, info *debug.BuildInfo) string {
	v := release + "-dev"
	if m := semver.FindStringSubmatch(ldVersion); m != nil {
		v = m[1]
	}
	rev, dirty, goVersion := ldCommit, false, ""
	if info != nil {
		goVersion = info.GoVersion
		if m := semver.FindStringSubmatch(info.Main.Version); ldVersion == "" && m != nil && !pseudoVersion.MatchString(m[1]) {
			v = m[1] // go install …@vX.Y.Z
		}
		for _, s := range info.Settings {
			switch {
			case s.Key == "vcs.revision" && rev == "":
				rev = s.Value[:min(len(s.Value), 12)]
			case s.Key == "vcs.modified" && s.Value == "true":
				dirty = true
			}
		}
		if m := pseudoVersion.FindString(info.Main.Version); rev == "" && m != "" {
			rev = m[len(m)-12:] // go install …@commit or @latest without a tag
		}
	}
	if rev == "" {
		rev = "unknown"
	}
	if dirty {
		rev += "-dirty"
	}
	s := fmt.Sprintf("%s (commit %s", v, rev)
	if goVersion != "" {
		s += ", " + goVersion
	}
	return s + ")"
}

func newVersionCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:     "version",
		Short:   "Print the version of escalefs",
		Long:    "Version prints the semantic version of escalefs, the commit it was built from and the Go version; escalefs --version prints the same.",
		Example: "  escalefs version\n  escalefs --version",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			fmt.Fprintln(g.stdout, "escalefs", versionString())
			return nil
		},
	}
}
