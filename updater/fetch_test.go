package updater

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"testing"

	"github.com/moltfleet/molt/updater/pack"
)

func TestParseContentRange(t *testing.T) {
	for _, tc := range []struct {
		in           string
		start, total int64
		ok           bool
	}{
		{"bytes 100-199/1000", 100, 1000, true},
		{"bytes 0-0/1", 0, 1, true},
		{"bytes 5-9/*", 5, -1, true},
		{"bytes */1000", 0, 1000, false},
		{"bytes -5-9/10", 0, 10, false},
		{"items 1-2/3", 0, -1, false},
		{"bytes 1-2", 0, -1, false},
		{"bytes 1-2/x", 0, -1, false},
		{"", 0, -1, false},
	} {
		start, total, ok := parseContentRange(tc.in)
		if start != tc.start || total != tc.total || ok != tc.ok {
			t.Errorf("parseContentRange(%q) = %d, %d, %v; want %d, %d, %v", tc.in, start, total, ok, tc.start, tc.total, tc.ok)
		}
	}
}

// TestBadRangeAnswers: servers that answer a resume wrongly. A range that
// starts elsewhere is discarded and the file fetched from zero; a total
// other than the manifest's is a refusal.
func TestBadRangeAnswers(t *testing.T) {
	const size = 100_000
	for _, tc := range []struct {
		name string
		// answer writes the response to a Range request from have.
		answer func(w http.ResponseWriter, data []byte, have int)
		want   error
	}{
		{"range from elsewhere", func(w http.ResponseWriter, data []byte, have int) {
			w.Header().Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", have-10, len(data)-1, len(data)))
			w.WriteHeader(http.StatusPartialContent)
			w.Write(data[have-10:])
		}, nil},
		{"other total", func(w http.ResponseWriter, data []byte, have int) {
			w.Header().Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", have, len(data)-1, len(data)+1))
			w.WriteHeader(http.StatusPartialContent)
			w.Write(data[have:])
		}, pack.ErrSizeMismatch},
		{"not satisfiable", func(w http.ResponseWriter, data []byte, have int) {
			w.WriteHeader(http.StatusRequestedRangeNotSatisfiable)
		}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pub, h, srv, _, base, agent := publishRelease(t, size, 100)
			data := srv.file(agent)
			first := true
			srv.setOverride(agent, func(w http.ResponseWriter, r *http.Request) {
				var have int
				if _, err := fmt.Sscanf(r.Header.Get("Range"), "bytes=%d-", &have); err == nil && first {
					first = false
					tc.answer(w, data, have)
					return
				}
				w.Header().Set("Content-Length", fmt.Sprint(len(data)))
				w.Write(data)
			})
			u := New(testOptions(h, pub))
			if err := writePart(u, "1.1.0", pack.RoleAgent, data[:size/2]); err != nil {
				t.Fatal(err)
			}
			err := u.Prepare(context.Background(), Order{ID: "o", Version: "1.1.0", Source: HTTPSource(base)})
			if tc.want == nil && err != nil || tc.want != nil && !errors.Is(err, tc.want) {
				t.Fatalf("Prepare = %v, want %v", err, tc.want)
			}
			if tc.want == nil {
				if err := u.Switch("o"); err != nil {
					t.Fatal(err)
				}
				checkHomeInvariants(t, h)
			}
		})
	}
}

// TestAlways416: a server that answers 416 to everything is asked a
// bounded number of times.
func TestAlways416(t *testing.T) {
	pub, h, srv, _, base, agent := publishRelease(t, 1000, 100)
	srv.setOverride(agent, func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusRequestedRangeNotSatisfiable)
	})
	u := New(testOptions(h, pub))
	err := u.Prepare(context.Background(), Order{ID: "o", Version: "1.1.0", Source: HTTPSource(base)})
	if err == nil || IsRefusal(err) {
		t.Fatalf("Prepare = %v, want a transient failure", err)
	}
	if n := srv.requestCount(agent); n != 4 {
		t.Errorf("%d requests, want 4 (Retry.Attempts)", n)
	}
}
