package ftp

import "strings"

// spaceMark stands for a trailing space in names on the server.
//
// pure-ftpd replaces spaces at the end of the argument of STOR, APPE, MKD
// and RNTO with underscores (revealextraspc in its ftp_parser.c), so an
// object or directory whose name ends with a space cannot be stored under
// its own name there. It refuses backslashes and control characters in
// names too, which rules those out as escape characters. Every name
// component is therefore stored with its final space, if any, written as
// U+2420 SYMBOL FOR SPACE, and each U+2420 of the name itself doubled, on
// every server, so that a relay's files on disk do not depend on which FTP
// server wrote them. Names without a trailing space or U+2420, which are all
// the names escalefs itself uses, are stored as they are.
const spaceMark = "\u2420"

// encodeName maps a valid object or directory name to its path below the
// relay root on the server.
func encodeName(name string) string {
	if !strings.Contains(name, " /") && !strings.HasSuffix(name, " ") && !strings.Contains(name, spaceMark) {
		return name
	}
	parts := strings.Split(name, "/")
	for i, p := range parts {
		parts[i] = encodeComponent(p)
	}
	return strings.Join(parts, "/")
}

func encodeComponent(c string) string {
	c = strings.ReplaceAll(c, spaceMark, spaceMark+spaceMark)
	if strings.HasSuffix(c, " ") {
		c = c[:len(c)-1] + spaceMark
	}
	return c
}

// decodeComponent reverses encodeComponent. It reports false for a name
// that encodeComponent cannot have produced (an odd run of U+2420 before
// the end): a file that some other program put there.
func decodeComponent(s string) (string, bool) {
	if !strings.Contains(s, spaceMark) {
		return s, true
	}
	var b strings.Builder
	for {
		i := strings.Index(s, spaceMark)
		if i < 0 {
			b.WriteString(s)
			return b.String(), true
		}
		b.WriteString(s[:i])
		s = s[i+len(spaceMark):]
		switch {
		case strings.HasPrefix(s, spaceMark):
			b.WriteString(spaceMark)
			s = s[len(spaceMark):]
		case s == "":
			b.WriteByte(' ')
			return b.String(), true
		default:
			return "", false
		}
	}
}
