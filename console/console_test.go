package console

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestHandlerServesAssets(t *testing.T) {
	h := Handler()
	for _, tc := range []struct {
		path, ctype, body string
		code              int
	}{
		{"/console/", "text/html; charset=utf-8", `<script type="module" src="app.js">`, 200},
		{"/console/index.html", "text/html; charset=utf-8", "<title>molt</title>", 200},
		{"/console/app.js", "text/javascript; charset=utf-8", "import", 200},
		{"/console/lib.js", "text/javascript; charset=utf-8", "export async function api", 200},
		{"/console/style.css", "text/css; charset=utf-8", ":root", 200},
		{"/console/nope.js", "", "not found", 404},
		{"/console/../console.go", "", "not found", 404},
	} {
		t.Run(tc.path, func(t *testing.T) {
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest("GET", tc.path, nil))
			if rec.Code != tc.code {
				t.Fatalf("status %d, want %d", rec.Code, tc.code)
			}
			if tc.ctype != "" && rec.Header().Get("Content-Type") != tc.ctype {
				t.Errorf("Content-Type %q, want %q", rec.Header().Get("Content-Type"), tc.ctype)
			}
			if !strings.Contains(rec.Body.String(), tc.body) {
				t.Errorf("body lacks %q", tc.body)
			}
			csp := rec.Header().Get("Content-Security-Policy")
			if !strings.Contains(csp, "script-src 'self'") || !strings.Contains(csp, "frame-ancestors 'none'") {
				t.Errorf("Content-Security-Policy %q", csp)
			}
			if rec.Header().Get("X-Content-Type-Options") != "nosniff" {
				t.Error("no X-Content-Type-Options: nosniff")
			}
		})
	}
}

func TestHandlerRevalidatesByETag(t *testing.T) {
	h := Handler()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/console/app.js", nil))
	etag := rec.Header().Get("ETag")
	if etag == "" || rec.Header().Get("Cache-Control") != "no-cache" {
		t.Fatalf("ETag %q, Cache-Control %q", etag, rec.Header().Get("Cache-Control"))
	}
	req := httptest.NewRequest("GET", "/console/app.js", nil)
	req.Header.Set("If-None-Match", etag)
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != http.StatusNotModified {
		t.Fatalf("status %d with the same ETag, want 304", rec.Code)
	}
}

// The console adds at most 2 MB to the molt binary (issue 12); its files
// are what it adds, besides this small package.
func TestSizeBudget(t *testing.T) {
	if n := Size(); n <= 0 || n > 2<<20 {
		t.Fatalf("console files are %d bytes; the budget is 2 MiB", n)
	}
}
