package artifacts

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// forEachStore runs f on an empty store of each kind: a directory, and a
// bucket of a real S3-compatible server (s3_unix_test.go).
func forEachStore(t *testing.T, f func(t *testing.T, st Store)) {
	t.Run("dir", func(t *testing.T) {
		d, err := NewDir(filepath.Join(t.TempDir(), "packs"))
		if err != nil {
			t.Fatal(err)
		}
		f(t, d)
	})
	t.Run("s3", func(t *testing.T) { f(t, newS3Store(t).st) })
}

// packDir writes files (path -> content) into a new directory under root
// (or a temporary one).
func packDir(t *testing.T, root string, files map[string]string) string {
	t.Helper()
	if root == "" {
		root = t.TempDir()
	}
	dir, err := os.MkdirTemp(root, ".incoming-")
	if err != nil {
		t.Fatal(err)
	}
	for p, c := range files {
		full := filepath.Join(dir, filepath.FromSlash(p))
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func read(t *testing.T, st Store, version, p string) (string, error) {
	t.Helper()
	f, err := st.Open(context.Background(), version, p)
	if err != nil {
		return "", err
	}
	defer f.Close()
	b, err := io.ReadAll(f)
	if err != nil {
		return "", err
	}
	if int64(len(b)) != f.Size() {
		t.Fatalf("%s/%s: read %d bytes, Size says %d", version, p, len(b), f.Size())
	}
	return string(b), nil
}

func root(st Store) string {
	if d, ok := st.(*Dir); ok {
		return d.root
	}
	return ""
}

func TestPublishOpenRemove(t *testing.T) {
	forEachStore(t, func(t *testing.T, st Store) {
		ctx := context.Background()
		// A publication interrupted earlier left a file the pack does not
		// have; publishing again leaves only the pack's files.
		if err := st.Publish(ctx, "1.0.0", packDir(t, root(st), map[string]string{"manifest.json": "old", "linux_amd64/stale": "x"})); err != nil {
			t.Fatal(err)
		}
		files := map[string]string{"manifest.json": "{}", "manifest.json.sig": "sig", "linux_amd64/agent": strings.Repeat("0123456789", 1000)}
		if err := st.Publish(ctx, "1.0.0", packDir(t, root(st), files)); err != nil {
			t.Fatal(err)
		}
		for p, want := range files {
			got, err := read(t, st, "1.0.0", p)
			if err != nil || got != want {
				t.Fatalf("%s: %d bytes, %v", p, len(got), err)
			}
		}
		for _, p := range []string{"linux_amd64/stale", "nothing", "linux_amd64"} {
			if _, err := read(t, st, "1.0.0", p); !errors.Is(err, ErrNotFound) {
				t.Fatalf("%s: %v, want ErrNotFound", p, err)
			}
		}
		if _, err := read(t, st, "2.0.0", "manifest.json"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("another version: %v", err)
		}

		// Range reads: what http.ServeContent does for a resumed download.
		f, err := st.Open(ctx, "1.0.0", "linux_amd64/agent")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.Seek(9995, io.SeekStart); err != nil {
			t.Fatal(err)
		}
		tail, err := io.ReadAll(f)
		f.Close()
		if err != nil || string(tail) != "56789" {
			t.Fatalf("read from 9995: %q %v", tail, err)
		}

		if err := st.Remove(ctx, "1.0.0"); err != nil {
			t.Fatal(err)
		}
		if _, err := read(t, st, "1.0.0", "manifest.json"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("after Remove: %v", err)
		}
		if err := st.Remove(ctx, "1.0.0"); err != nil {
			t.Fatalf("removing twice: %v", err)
		}
	})
}

// A pre-signed URL serves the file to a client without credentials,
// Range requests included, until it expires; a directory has none.
func TestPresign(t *testing.T) {
	forEachStore(t, func(t *testing.T, st Store) {
		ctx := context.Background()
		if err := st.Publish(ctx, "1.0.0", packDir(t, root(st), map[string]string{"linux_amd64/agent": "0123456789"})); err != nil {
			t.Fatal(err)
		}
		u, err := st.Presign(ctx, "1.0.0", "linux_amd64/agent", time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := st.(*Dir); ok {
			if u != "" {
				t.Fatalf("a directory presigned %q", u)
			}
			return
		}
		req, _ := http.NewRequest("GET", u, nil)
		req.Header.Set("Range", "bytes=4-")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusPartialContent || string(b) != "456789" {
			t.Fatalf("GET %s with Range: %d %q", u, resp.StatusCode, b)
		}
		// The signature covers the key: another key is refused.
		bad := strings.Replace(u, "linux_amd64/agent", "linux_amd64/other", 1)
		resp, err = http.Get(bad)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusForbidden {
			t.Fatalf("a URL signed for another key: %d, want 403", resp.StatusCode)
		}
	})
}

func TestParseS3(t *testing.T) {
	t.Setenv("AWS_ENDPOINT_URL_S3", "")
	t.Setenv("AWS_ENDPOINT_URL", "")
	t.Setenv("AWS_REGION", "eu-west-1")
	for _, tt := range []struct {
		spec string
		want S3Config
		err  string
	}{
		{"s3://packs", S3Config{Bucket: "packs", Region: "eu-west-1"}, ""},
		{"s3://packs/molt/prod/", S3Config{Bucket: "packs", Prefix: "molt/prod", Region: "eu-west-1"}, ""},
		{"s3://packs/p?endpoint=http://127.0.0.1:9000&region=us-east-1", S3Config{Bucket: "packs", Prefix: "p", Endpoint: "http://127.0.0.1:9000", Region: "us-east-1", PathStyle: true}, ""},
		{"s3://packs?endpoint=https://s3.example.com&path-style=false", S3Config{Bucket: "packs", Endpoint: "https://s3.example.com", Region: "eu-west-1"}, ""},
		{"s3:///p", S3Config{}, "no bucket"},
		{"s3://key:secret@packs", S3Config{}, "credentials do not go in the URL"},
		{"s3://packs?endpont=x", S3Config{}, `unknown parameter "endpont"`},
		{"s3://packs?path-style=maybe", S3Config{}, "want true or false"},
	} {
		t.Run(tt.spec, func(t *testing.T) {
			u, err := url.Parse(tt.spec)
			if err != nil {
				t.Fatal(err)
			}
			got, err := parseS3(u)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("error %v, want %q", err, tt.err)
				}
				return
			}
			if err != nil || fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Fatalf("got %+v (%v), want %+v", got, err, tt.want)
			}
		})
	}
	if _, err := Open(context.Background(), "gs://packs", t.TempDir()); err == nil || !strings.Contains(err.Error(), "want s3://") {
		t.Fatalf("another scheme: %v", err)
	}
}
