// Package units parses the quantities escalefs takes on its command line
// and in its configuration file, such as sizes ("2GB", "500MiB").
package units

import (
	"errors"
	"fmt"
	"math/big"
	"regexp"
	"strconv"
	"strings"
)

// SizeForm describes the sizes ParseSize accepts, for error messages.
const SizeForm = "expected a size such as 1000000 (bytes), 500KB, 2GB (k, M, G, T, P: powers of 1000) " +
	"or 500MiB, 2GiB (Ki, Mi, Gi, Ti, Pi: powers of 1024), or 0 for none"

// sizeUnits maps the lower-case units ParseSize accepts to their value in
// bytes.
var sizeUnits = map[string]int64{
	"": 1, "b": 1,
	"k": 1e3, "kb": 1e3, "m": 1e6, "mb": 1e6, "g": 1e9, "gb": 1e9, "t": 1e12, "tb": 1e12, "p": 1e15, "pb": 1e15,
	"ki": 1 << 10, "kib": 1 << 10, "mi": 1 << 20, "mib": 1 << 20, "gi": 1 << 30, "gib": 1 << 30,
	"ti": 1 << 40, "tib": 1 << 40, "pi": 1 << 50, "pib": 1 << 50,
}

// sizeSyntax splits a size into its whole part, its fraction and its unit.
var sizeSyntax = regexp.MustCompile(`^([0-9]+)(?:\.([0-9]+))?[ \t]*([a-zA-Z]*)$`)

// ParseSize parses a size in bytes written the usual way: plain bytes
// ("1000000"), decimal units ("500KB", "2GB", "1.5T": powers of 1000) or
// binary ones ("500MiB", "2GiB": powers of 1024), case-insensitive, with an
// optional space before the unit. A fraction is allowed with a unit and
// rounded down to whole bytes. The error says why s is not a size; the
// caller adds the flag and SizeForm.
func ParseSize(s string) (int64, error) {
	t := strings.TrimSpace(s)
	if t == "" {
		return 0, errors.New("empty")
	}
	if t[0] == '-' {
		return 0, errors.New("negative")
	}
	m := sizeSyntax.FindStringSubmatch(t)
	if m == nil {
		return 0, errors.New("not a number followed by an optional unit")
	}
	whole, frac, unit := m[1], m[2], strings.ToLower(m[3])
	mult, ok := sizeUnits[unit]
	if !ok {
		return 0, fmt.Errorf("unknown unit %q", m[3])
	}
	if frac != "" && mult == 1 {
		return 0, errors.New("a number of bytes must be whole")
	}
	n, _ := new(big.Int).SetString(whole+frac, 10)
	n.Mul(n, big.NewInt(mult))
	n.Quo(n, new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(len(frac))), nil))
	switch {
	case !n.IsInt64():
		return 0, errors.New("too large")
	case n.Sign() == 0 && strings.Trim(whole+frac, "0") != "":
		return 0, errors.New("less than one byte")
	}
	return n.Int64(), nil
}

// FormatSize writes n bytes for people: "512 B" below 1 KiB, otherwise
// with one decimal and a binary unit ("1.5 KiB", "2.0 GiB").
func FormatSize(n int64) string {
	const units = "KMGTPE"
	if n < 1024 {
		return fmt.Sprintf("%d B", n)
	}
	v, u := float64(n)/1024, 0
	for v >= 1024 && u < len(units)-1 {
		v /= 1024
		u++
	}
	return fmt.Sprintf("%.1f %ciB", v, units[u])
}

// MinFreeForm describes the values ParseMinFree accepts, for messages.
const MinFreeForm = `expected a size such as "1GiB" or "500MB", a percentage of the disk such as "5%", ` +
	`or "0" for no check`

// MinFree is a room to leave on a disk: Bytes, or Percent of its size, or
// nothing at all (Off); the zero value is the default.
type MinFree struct {
	Bytes   int64
	Percent float64
	Off     bool
}

// Of returns the bytes m stands for on a disk of total bytes: 0 when Off,
// Bytes, or Percent of total. ok is false for the zero value, which means
// the caller's default.
func (m MinFree) Of(total int64) (n int64, ok bool) {
	switch {
	case m.Off:
		return 0, true
	case m.Bytes > 0:
		return m.Bytes, true
	case m.Percent > 0:
		return int64(float64(total) * m.Percent / 100), true
	}
	return 0, false
}

// ParseMinFree parses a room to leave on a disk: a size, a percentage
// ("5%"), "0" (none) or "" (the default).
func ParseMinFree(s string) (MinFree, error) {
	s = strings.TrimSpace(s)
	switch {
	case s == "":
		return MinFree{}, nil
	case strings.HasSuffix(s, "%"):
		p, err := strconv.ParseFloat(strings.TrimSpace(strings.TrimSuffix(s, "%")), 64)
		if err != nil || p < 0 || p >= 100 {
			return MinFree{}, fmt.Errorf("%q: a percentage from 0 to 100 is expected", s)
		}
		return MinFree{Percent: p, Off: p == 0}, nil
	}
	n, err := ParseSize(s)
	if err != nil {
		return MinFree{}, err
	}
	return MinFree{Bytes: n, Off: n == 0}, nil
}

// BwLimitForm describes the bandwidth limits ParseBwLimit accepts, for
// error messages.
const BwLimitForm = "expected bytes per second as a size, such as 10MB or 1.5MiB (both ways), " +
	"or UP:DOWN such as 5MB:20MB (0 for no limit that way), or 0 for none"

// ParseBwLimit parses a bandwidth limit in bytes per second: one size for
// both ways ("10MB"), or the sending and receiving limits apart
// ("5MB:20MB"), each 0 for no limit; an optional "/s" may follow a size.
func ParseBwLimit(s string) (up, down int64, err error) {
	upText, downText, apart := strings.Cut(s, ":")
	if !apart {
		downText = upText
	}
	rate := func(t string) (int64, error) {
		t = strings.TrimSpace(t)
		t = strings.TrimSuffix(t, "/s")
		return ParseSize(t)
	}
	if up, err = rate(upText); err != nil {
		return 0, 0, err
	}
	if down, err = rate(downText); err != nil {
		return 0, 0, err
	}
	return up, down, nil
}
