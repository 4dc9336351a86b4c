package apiclient

import (
	"context"
	"encoding/pem"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func writeCA(t *testing.T, srv *httptest.Server) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "ca.pem")
	b := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestErrors(t *testing.T) {
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/v1/ok":
			if r.Header.Get("Authorization") != "Bearer tok" {
				t.Errorf("authorization header %q", r.Header.Get("Authorization"))
			}
			w.Write([]byte(`{"n": 3}`))
		case "/v1/denied":
			w.WriteHeader(403)
			w.Write([]byte(`{"error": "token role viewer may not do this"}`))
		case "/v1/denied-named":
			w.WriteHeader(403)
			w.Write([]byte(`{"error": "this needs the admin role; the token has viewer", "code": "forbidden"}`))
		case "/v1/unauth":
			w.WriteHeader(401)
			w.Write([]byte(`{"error": "unknown token"}`))
		case "/v1/bad":
			w.WriteHeader(400)
			w.Write([]byte("{\"error\": \"target: \\\"x\\\" is not a version\\nsecond line\"}"))
		case "/v1/slow":
			time.Sleep(300 * time.Millisecond)
		case "/v1/html":
			w.WriteHeader(502)
			w.Write([]byte("<html>\n<body>bad gateway</body>\n</html>"))
		default:
			w.WriteHeader(404)
		}
	}))
	defer srv.Close()
	ca := writeCA(t, srv)
	ctx := context.Background()

	c, err := New(Options{Server: srv.URL + "/", Token: "tok", CAFile: ca})
	if err != nil {
		t.Fatal(err)
	}
	var out struct{ N int }
	if err := c.Do(ctx, Request{Method: "GET", Path: "/v1/ok"}, &out); err != nil || out.N != 3 {
		t.Fatalf("ok: %v %+v", err, out)
	}
	tests := []struct {
		path, role, want string
		sentinel         error
	}{
		{"/v1/denied", "admin", "this needs a token with the admin role (403): token role viewer may not do this", ErrUnauthorized},
		{"/v1/denied-named", "admin", "forbidden (403): this needs the admin role; the token has viewer", ErrUnauthorized},
		{"/v1/unauth", "", "the server refused the token (401): unknown token; pass a valid --token or --token-file", ErrUnauthorized},
		{"/v1/bad", "", `target: "x" is not a version second line`, nil},
		{"/v1/html", "", "<html> <body>bad gateway</body> </html>", nil},
		{"/v1/missing", "", "not found", ErrNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			err := c.Do(ctx, Request{Method: "GET", Path: tt.path, Role: tt.role}, nil)
			if err == nil || err.Error() != tt.want {
				t.Fatalf("error %q, want %q", err, tt.want)
			}
			if tt.sentinel != nil && !errors.Is(err, tt.sentinel) {
				t.Fatalf("error %v is not %v", err, tt.sentinel)
			}
		})
	}

	t.Run("untrusted", func(t *testing.T) {
		c, _ := New(Options{Server: srv.URL})
		err := c.Do(ctx, Request{Method: "GET", Path: "/v1/ok"}, nil)
		var ce *CertError
		if !errors.As(err, &ce) || !strings.Contains(err.Error(), "pass --ca FILE") || !strings.Contains(err.Error(), srv.Listener.Addr().String()) {
			t.Fatalf("error %v", err)
		}
	})
	t.Run("refused", func(t *testing.T) {
		l, _ := net.Listen("tcp", "127.0.0.1:0")
		addr := l.Addr().String()
		l.Close()
		c, _ := New(Options{Server: "https://" + addr})
		err := c.Do(ctx, Request{Method: "GET", Path: "/v1/ok"}, nil)
		var ce *ConnectError
		want := "cannot connect to the server at " + addr + ": connection refused"
		if !errors.As(err, &ce) || err.Error() != want {
			t.Fatalf("error %q, want %q", err, want)
		}
	})
	t.Run("slow", func(t *testing.T) {
		c, _ := New(Options{Server: srv.URL, CAFile: ca, Timeout: 50 * time.Millisecond})
		err := c.Do(ctx, Request{Method: "GET", Path: "/v1/slow"}, nil)
		var ce *ConnectError
		if !errors.As(err, &ce) || !strings.HasPrefix(err.Error(), "no answer from the server at ") {
			t.Fatalf("error %v", err)
		}
	})
	t.Run("no server", func(t *testing.T) {
		if _, err := New(Options{}); !errors.Is(err, ErrNoServer) {
			t.Fatalf("error %v", err)
		}
		if _, err := New(Options{Server: "molt.example.com"}); err == nil {
			t.Fatal("no error for a URL without scheme")
		}
	})
	t.Run("bad CA file", func(t *testing.T) {
		p := filepath.Join(t.TempDir(), "x.pem")
		os.WriteFile(p, []byte("nothing"), 0o644)
		if _, err := New(Options{Server: srv.URL, CAFile: p}); err == nil || !strings.Contains(err.Error(), "no PEM certificate") {
			t.Fatalf("error %v", err)
		}
	})
}

func TestDecodeJSONBounded(t *testing.T) {
	var v map[string]string
	if err := DecodeJSON(strings.NewReader(`{"a":"`+strings.Repeat("x", 100)+`"}`), 50, &v); err == nil {
		t.Fatal("no error for an oversize response")
	}
	if err := DecodeJSON(strings.NewReader(`{"a":"b"}`), 50, &v); err != nil || v["a"] != "b" {
		t.Fatalf("%v %v", err, v)
	}
}
