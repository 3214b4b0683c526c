package units

import (
	"strings"
	"testing"
)

func TestParseSize(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int64
		err  string // a part of the error, "" when in is valid
	}{
		{"0", 0, ""},
		{"0B", 0, ""},
		{"0GiB", 0, ""},
		{"1", 1, ""},
		{"123456789", 123456789, ""},
		{"100b", 100, ""},
		{"500KB", 500_000, ""},
		{"500kb", 500_000, ""},
		{"500k", 500_000, ""},
		{"500 KB", 500_000, ""},
		{" 2GB ", 2_000_000_000, ""},
		{"2G", 2_000_000_000, ""},
		{"3TB", 3_000_000_000_000, ""},
		{"1PB", 1_000_000_000_000_000, ""},
		{"2MB", 2_000_000, ""},
		{"2mB", 2_000_000, ""},
		{"1KiB", 1024, ""},
		{"500MiB", 500 << 20, ""},
		{"500mib", 500 << 20, ""},
		{"500 MiB", 500 << 20, ""},
		{"2GiB", 2 << 30, ""},
		{"2gi", 2 << 30, ""},
		{"1TiB", 1 << 40, ""},
		{"1.5GB", 1_500_000_000, ""},
		{"1.5GiB", 3 << 29, ""},
		{"0.5KB", 500, ""},
		{"1.0001KiB", 1024, ""}, // rounded down to whole bytes
		{"8EB", 0, `unknown unit "EB"`},
		{"9223372036854775807", 1<<63 - 1, ""},
		{"9223372036854775808", 0, "too large"},
		{"9000PB", 9_000_000_000_000_000_000, ""},
		{"10000PB", 0, "too large"},
		{"", 0, "empty"},
		{"  ", 0, "empty"},
		{"-1", 0, "negative"},
		{"-2GB", 0, "negative"},
		{"GB", 0, "not a number"},
		{"2 G B", 0, "not a number"},
		{"1,5GB", 0, "not a number"},
		{"1.GB", 0, "not a number"},
		{".5GB", 0, "not a number"},
		{"+5", 0, "not a number"},
		{"0x10", 0, "not a number"},
		{"2XB", 0, `unknown unit "XB"`},
		{"2 bytes", 0, `unknown unit "bytes"`},
		{"1.5", 0, "whole"},
		{"1.5B", 0, "whole"},
		{"0.0001KB", 0, "less than one byte"},
	} {
		got, err := ParseSize(tc.in)
		switch {
		case tc.err == "" && err != nil:
			t.Errorf("ParseSize(%q): %v", tc.in, err)
		case tc.err == "" && got != tc.want:
			t.Errorf("ParseSize(%q) = %d, want %d", tc.in, got, tc.want)
		case tc.err != "" && err == nil:
			t.Errorf("ParseSize(%q) = %d, want an error mentioning %q", tc.in, got, tc.err)
		case tc.err != "" && !strings.Contains(err.Error(), tc.err):
			t.Errorf("ParseSize(%q): error %q does not mention %q", tc.in, err, tc.err)
		}
	}
}

func TestFormatSize(t *testing.T) {
	for n, want := range map[int64]string{0: "0 B", 1023: "1023 B", 1024: "1.0 KiB", 1536: "1.5 KiB", 3 << 30: "3.0 GiB", 5 << 60: "5.0 EiB"} {
		if got := FormatSize(n); got != want {
			t.Errorf("FormatSize(%d) = %q, want %q", n, got, want)
		}
	}
}

func TestParseMinFree(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want MinFree
	}{
		{"", MinFree{}},
		{"1GiB", MinFree{Bytes: 1 << 30}},
		{"5%", MinFree{Percent: 5}},
		{"0", MinFree{Off: true}},
		{"0%", MinFree{Off: true}},
	} {
		if got, err := ParseMinFree(tc.in); err != nil || got != tc.want {
			t.Errorf("ParseMinFree(%q) = %+v, %v; want %+v", tc.in, got, err, tc.want)
		}
	}
	for _, bad := range []string{"lots", "150%", "-1%", "5 %%"} {
		if got, err := ParseMinFree(bad); err == nil {
			t.Errorf("ParseMinFree(%q) = %+v, want an error", bad, got)
		}
	}
}

func TestParseBwLimit(t *testing.T) {
	for _, tc := range []struct {
		in       string
		up, down int64
		err      string
	}{
		{in: "10MB", up: 10e6, down: 10e6},
		{in: "1.5MiB/s", up: 3 << 19, down: 3 << 19},
		{in: "5MB:20MB", up: 5e6, down: 20e6},
		{in: "0:1M", up: 0, down: 1e6},
		{in: "0", up: 0, down: 0},
		{in: "fast", err: "not a number"},
		{in: "5MB:", err: "empty"},
		{in: "-1M", err: "negative"},
		{in: "1M:2M:3M", err: "not a number"},
	} {
		up, down, err := ParseBwLimit(tc.in)
		switch {
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("ParseBwLimit(%q) = %d, %d, %v; want an error with %q", tc.in, up, down, err, tc.err)
		case tc.err == "" && (err != nil || up != tc.up || down != tc.down):
			t.Errorf("ParseBwLimit(%q) = %d, %d, %v; want %d, %d", tc.in, up, down, err, tc.up, tc.down)
		}
	}
}
