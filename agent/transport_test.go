package agent

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
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
