package agent

import (
	"context"
	"encoding/json"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/moltfleet/molt/config"
	"github.com/moltfleet/molt/protocol"
)

// TestTransportAllowsLongestPoll: the transport shared by check-ins and
// downloads never cuts an answer the server may legitimately hold back
// (agents.poll-seconds goes up to MaxPollSeconds); a check-in's own
// deadline is its announced wait plus a margin.
func TestTransportAllowsLongestPoll(t *testing.T) {
	hc, err := NewHTTPClient(&config.Config{Server: "https://molt.example:8443"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	tr := hc.Transport.(*credentialTransport).base.(*http.Transport)
	if tr.ResponseHeaderTimeout <= protocol.MaxPollSeconds*time.Second {
		t.Fatalf("ResponseHeaderTimeout %s cuts a long poll of %ds", tr.ResponseHeaderTimeout, protocol.MaxPollSeconds)
	}
}

// TestCheckinAnnouncesWait: the check-in tells the server how long the
// agent waits (bounded to 1..MaxPollSeconds), and an answer that comes a
// little after that wait is not cut off.
func TestCheckinAnnouncesWait(t *testing.T) {
	got := make(chan int, 8)
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req protocol.CheckinRequest
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
			http.Error(w, err.Error(), 400)
			return
		}
		got <- req.WaitSeconds
		if req.WaitSeconds == 1 {
			time.Sleep(1500 * time.Millisecond) // past the wait, within the margin
		}
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{"settings":{"poll_seconds":300},"server_time":"2026-01-01T00:00:00Z"}`))
	}))
	defer hs.Close()
	cl, err := NewClient(ClientOptions{Server: hs.URL})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		wait time.Duration
		want int
	}{
		{time.Second, 1},
		{90 * time.Second, 90},
		{0, 1},
		{time.Hour, protocol.MaxPollSeconds},
	} {
		resp, err := cl.Checkin(context.Background(), "cred", protocol.CheckinRequest{}, tc.wait)
		if err != nil {
			t.Fatalf("wait %s: %v", tc.wait, err)
		}
		if w := <-got; w != tc.want {
			t.Errorf("wait %s: announced wait_seconds %d, want %d", tc.wait, w, tc.want)
		}
		if resp.Settings.PollSeconds != 300 {
			t.Errorf("poll_seconds %d", resp.Settings.PollSeconds)
		}
	}
}

// TestHTTPClientLoadsRootsAtFirstRequest: ca_file is read and checked
// when the client is made, but the system's roots (with ca_file's
// certificate added) are loaded at the first request, off the agent's way
// to ready; the request then trusts ca_file.
func TestHTTPClientLoadsRootsAtFirstRequest(t *testing.T) {
	hs := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer hs.Close()
	ca := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: hs.Certificate().Raw}), 0o644); err != nil {
		t.Fatal(err)
	}
	hc, err := NewHTTPClient(&config.Config{Server: hs.URL, CAFile: ca}, nil)
	if err != nil {
		t.Fatal(err)
	}
	tr := hc.Transport.(*credentialTransport).base.(*http.Transport)
	if tr.TLSClientConfig.RootCAs != nil {
		t.Fatal("roots loaded when the client was made")
	}
	resp, err := hc.Get(hs.URL)
	if err != nil {
		t.Fatalf("GET with ca_file trusted: %v", err)
	}
	resp.Body.Close()
	if tr.TLSClientConfig.RootCAs == nil {
		t.Fatal("no roots after the first request")
	}

	for _, tc := range []struct{ name, content string }{
		{"not PEM", "not a certificate\n"},
		{"empty", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bad := filepath.Join(t.TempDir(), "bad.pem")
			if err := os.WriteFile(bad, []byte(tc.content), 0o644); err != nil {
				t.Fatal(err)
			}
			if _, err := NewHTTPClient(&config.Config{Server: hs.URL, CAFile: bad}, nil); err == nil || !strings.Contains(err.Error(), "ca_file") {
				t.Fatalf("err %v, want one naming ca_file", err)
			}
		})
	}
}
