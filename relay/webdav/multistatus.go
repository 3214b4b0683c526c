package webdav

import (
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// propfindBody asks for the three properties the relay needs. Servers send
// nothing else then (Apache's default answer has a dozen more per entry).
// displayname is not asked for: Apache has none, so names come from hrefs.
const propfindBody = `<?xml version="1.0" encoding="utf-8"?>
<D:propfind xmlns:D="DAV:"><D:prop><D:resourcetype/><D:getcontentlength/><D:getlastmodified/></D:prop></D:propfind>
`

// propfind sends a PROPFIND with the given Depth ("0" or "1"; Apache
// refuses "infinity", so listings walk the tree level by level).
func (r *davRelay) propfind(ctx context.Context, u *url.URL, depth string) (*http.Response, error) {
	return r.do(ctx, request{
		method: "PROPFIND",
		url:    u,
		header: map[string]string{
			"Depth":        depth,
			"Content-Type": `application/xml; charset="utf-8"`,
			"Accept":       "application/xml, text/xml",
		},
		body: func(int) (io.Reader, int64, error) {
			return strings.NewReader(propfindBody), int64(len(propfindBody)), nil
		},
	})
}

// entry is one resource of a multistatus answer.
type entry struct {
	segs    []string // decoded path segments of the href
	isDir   bool
	size    int64 // -1 when the server did not say
	modTime time.Time
}

// xmlResponse is a DAV:response element.
type xmlResponse struct {
	Href     []string      `xml:"DAV: href"`
	Status   string        `xml:"DAV: status"`
	Propstat []xmlPropstat `xml:"DAV: propstat"`
}

type xmlPropstat struct {
	Status string `xml:"DAV: status"`
	Prop   struct {
		ResourceType *struct {
			Collection *struct{} `xml:"DAV: collection"`
		} `xml:"DAV: resourcetype"`
		ContentLength *string `xml:"DAV: getcontentlength"`
		LastModified  *string `xml:"DAV: getlastmodified"`
	} `xml:"DAV: prop"`
}

// errStopParse ends parseMultistatus early without an error.
var errStopParse = errors.New("stop parsing")

// parseMultistatus decodes a 207 Multi-Status body one response at a time
// and calls fn for every resource the server describes with a 200 propstat.
// Responses carrying only an error status (a resource that vanished while
// the server listed its collection) are skipped. An error from fn stops the
// parse and is returned.
func parseMultistatus(body io.Reader, fn func(entry) error) error {
	dec := xml.NewDecoder(body)
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("malformed multistatus XML: %w", err)
		}
		se, ok := tok.(xml.StartElement)
		if !ok || se.Name.Space != "DAV:" || se.Name.Local != "response" {
			continue
		}
		var xr xmlResponse
		if err := dec.DecodeElement(&xr, &se); err != nil {
			return fmt.Errorf("malformed multistatus XML: %w", err)
		}
		e, ok, err := xr.entry()
		if err != nil {
			return err
		}
		if !ok {
			continue
		}
		if err := fn(e); err != nil {
			return err
		}
	}
}

// entry extracts the resource from a response element; ok is false when the
// response describes no existing resource.
func (xr *xmlResponse) entry() (e entry, ok bool, err error) {
	if len(xr.Href) == 0 {
		return e, false, nil
	}
	href := strings.TrimSpace(xr.Href[0])
	// Only resourcetype tells a collection: nginx echoes a trailing slash
	// of the request in the href of a file.
	e.segs, _, err = hrefSegments(href)
	if err != nil {
		return e, false, fmt.Errorf("server sent an unparsable href %q: %w", href, err)
	}
	e.size = -1
	found := false
	for _, ps := range xr.Propstat {
		if statusOf(ps.Status) != http.StatusOK {
			continue
		}
		found = true
		p := ps.Prop
		if p.ResourceType != nil && p.ResourceType.Collection != nil {
			e.isDir = true
		}
		if p.ContentLength != nil {
			if n, err := strconv.ParseInt(strings.TrimSpace(*p.ContentLength), 10, 64); err == nil && n >= 0 {
				e.size = n
			}
		}
		if p.LastModified != nil {
			if t, err := http.ParseTime(strings.TrimSpace(*p.LastModified)); err == nil {
				e.modTime = t
			}
		}
	}
	if !found {
		return e, false, nil
	}
	return e, true, nil
}

// statusOf parses the code of a DAV:status line "HTTP/1.1 200 OK".
func statusOf(s string) int {
	f := strings.Fields(s)
	if len(f) < 2 {
		return 0
	}
	n, _ := strconv.Atoi(f[1])
	return n
}

// hrefSegments decodes the path of an href, which may be an absolute path
// or an absolute URL (both are allowed, and servers escape differently:
// Apache writes "%3f" and a raw "&", nginx "%3F"), into its segments.
// trailing reports a trailing slash, which marks a collection.
func hrefSegments(href string) (segs []string, trailing bool, err error) {
	p := href
	if i := strings.Index(p, "://"); i >= 0 {
		rest := p[i+3:]
		if j := strings.IndexByte(rest, '/'); j >= 0 {
			p = rest[j:]
		} else {
			p = "/"
		}
	}
	segs, err = splitEscaped(p)
	return segs, strings.HasSuffix(p, "/"), err
}
