package drivetest

import (
	"fmt"
	"strings"
)

// fieldMask is a parsed "fields" parameter (partial response). A nil mask
// keeps everything below it.
type fieldMask map[string]fieldMask

// Drive's defaults when no fields parameter is sent: a client that forgets
// to ask for size or modifiedTime gets none, as from the real service.
var (
	defaultFileFields = fieldMask{"kind": nil, "id": nil, "name": nil, "mimeType": nil}
	defaultListFields = fieldMask{"kind": nil, "nextPageToken": nil, "incompleteSearch": nil, "files": defaultFileFields}
)

// parseFields parses "nextPageToken, files(id,name)" and "files/id" forms.
func parseFields(s string) (fieldMask, error) {
	m := fieldMask{}
	rest, err := parseFieldList(strings.TrimSpace(s), m)
	if err != nil {
		return nil, err
	}
	if rest != "" {
		return nil, fmt.Errorf("unexpected %q", rest)
	}
	return m, nil
}

func parseFieldList(s string, into fieldMask) (string, error) {
	for {
		s = strings.TrimLeft(s, " ")
		i := strings.IndexAny(s, ",()")
		if i < 0 {
			i = len(s)
		}
		name := strings.TrimSpace(s[:i])
		if name == "" {
			return s, fmt.Errorf("empty field name")
		}
		s = s[i:]
		// "a/b/c" nests.
		parts := strings.Split(name, "/")
		cur := into
		for j, part := range parts {
			if j == len(parts)-1 {
				break
			}
			sub, ok := cur[part]
			if !ok || sub == nil {
				if ok && sub == nil {
					cur = nil
					break
				}
				sub = fieldMask{}
				cur[part] = sub
			}
			cur = sub
		}
		last := parts[len(parts)-1]
		if strings.HasPrefix(s, "(") {
			sub := fieldMask{}
			var err error
			s, err = parseFieldList(s[1:], sub)
			if err != nil {
				return s, err
			}
			if !strings.HasPrefix(s, ")") {
				return s, fmt.Errorf("missing )")
			}
			s = s[1:]
			if cur != nil {
				if old, ok := cur[last]; !ok || old != nil {
					cur[last] = merge(old, sub)
				}
			}
		} else if cur != nil {
			cur[last] = nil
		}
		s = strings.TrimLeft(s, " ")
		if !strings.HasPrefix(s, ",") {
			return s, nil
		}
		s = s[1:]
	}
}

func merge(a, b fieldMask) fieldMask {
	if a == nil {
		return b
	}
	for k, v := range b {
		a[k] = v
	}
	return a
}

// apply keeps the masked fields of v (maps and slices of maps).
func (m fieldMask) apply(v any) any {
	if m == nil {
		return v
	}
	if _, all := m["*"]; all {
		return v
	}
	switch x := v.(type) {
	case map[string]any:
		out := map[string]any{}
		for k, sub := range m {
			if val, ok := x[k]; ok {
				out[k] = sub.apply(val)
			}
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = m.apply(e)
		}
		return out
	}
	return v
}
