package main

import (
	"archive/tar"
	"archive/zip"
	"bytes"
	"io"
	"os"
	"path/filepath"
	"testing"
)

func TestPackUploadZipToTar(t *testing.T) {
	p := filepath.Join(t.TempDir(), "p.zip")
	f, _ := os.Create(p)
	zw := zip.NewWriter(f)
	files := []struct{ name, body string }{
		{"manifest.json", `{"version":"1.0.0"}`},
		{"manifest.json.sig", "sig"},
		{"linux_amd64/molt-agent", string(bytes.Repeat([]byte("x"), 100000))},
	}
	for _, fl := range files {
		w, _ := zw.Create(fl.name)
		w.Write([]byte(fl.body))
	}
	zw.Close()
	f.Close()

	f, _ = os.Open(p)
	defer f.Close()
	st, _ := f.Stat()
	body, err := packUpload(f, st.Size())
	if err != nil {
		t.Fatal(err)
	}
	defer body.Close()
	tr := tar.NewReader(body)
	for _, want := range files {
		h, err := tr.Next()
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(tr)
		if h.Name != want.name || string(b) != want.body || h.Typeflag != tar.TypeReg {
			t.Fatalf("entry %s (%d bytes), want %s", h.Name, len(b), want.name)
		}
	}
	if _, err := tr.Next(); err != io.EOF {
		t.Fatalf("after the last entry: %v", err)
	}
}

func TestPackUploadTarAsIs(t *testing.T) {
	p := filepath.Join(t.TempDir(), "p.tar")
	os.WriteFile(p, []byte("not a zip"), 0o644)
	f, _ := os.Open(p)
	defer f.Close()
	body, err := packUpload(f, 9)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(body)
	if string(b) != "not a zip" {
		t.Fatalf("body %q", b)
	}
}
