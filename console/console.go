// Package console is molt's web console: static files (ES modules and one
// style sheet, no build step) embedded in the molt binary and served by
// molt serve under /console/. The pages talk only to the operator API
// under /v1, as the CLI does, so the server's roles and checks apply to
// every action; the console itself holds no data and no secret.
package console

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"io/fs"
	"mime"
	"net/http"
	"path"
	"strings"
	"time"
)

// Prefix is where the console is served.
const Prefix = "/console/"

// securityHeaders keep the pages to their own files: no inline script, no
// other origin, no framing. Data from the network reaches the page only as
// text (lib.js builds elements, never HTML strings).
var securityHeaders = map[string]string{
	"Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
		"connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
	"X-Content-Type-Options":     "nosniff",
	"Referrer-Policy":            "no-referrer",
	"X-Frame-Options":            "DENY",
	"Cross-Origin-Opener-Policy": "same-origin",
}

type file struct {
	body  []byte
	etag  string
	ctype string
}

// Handler serves the console's files below Prefix; any other path under it
// is a 404. Files are revalidated by ETag on every load, so an upgraded
// server never leaves a browser on old scripts.
func Handler() http.Handler {
	files := map[string]file{}
	err := fs.WalkDir(assets, "assets", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := assets.ReadFile(p)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(b)
		ct := mime.TypeByExtension(path.Ext(p))
		if strings.HasSuffix(p, ".js") {
			ct = "text/javascript; charset=utf-8"
		}
		files[strings.TrimPrefix(p, "assets/")] = file{body: b, etag: `"` + hex.EncodeToString(sum[:8]) + `"`, ctype: ct}
		return nil
	})
	if err != nil {
		panic("console: embedded assets: " + err.Error()) // the build embeds them; unreadable is a broken binary
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		name := strings.TrimPrefix(r.URL.Path, Prefix)
		if name == "" {
			name = "index.html"
		}
		f, ok := files[name]
		for k, v := range securityHeaders {
			w.Header().Set(k, v)
		}
		if !ok {
			http.Error(w, "not found", http.StatusNotFound)
			return
		}
		w.Header().Set("Content-Type", f.ctype)
		w.Header().Set("Cache-Control", "no-cache")
		w.Header().Set("ETag", f.etag)
		http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(f.body))
	})
}

// Size is the bytes the console adds to the binary (its files).
func Size() int {
	n := 0
	_ = fs.WalkDir(assets, "assets", func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			if b, err := assets.ReadFile(p); err == nil {
				n += len(b)
			}
		}
		return nil
	})
	return n
}
