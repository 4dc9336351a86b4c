package server

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/moltfleet/molt/protocol"
	"github.com/moltfleet/molt/updater/pack"
)

// TestLongPollOutlivesReadTimeout holds a check-in longer than the HTTP
// server's ReadTimeout: the poll must still end with a proper answer, not a
// cancelled request.
func TestLongPollOutlivesReadTimeout(t *testing.T) {
	e := newEnv(t)
	a := e.newAgent("a", "1.0.0")
	key, _ := testKey()
	s, err := New(context.Background(), Options{DataDir: t.TempDir(), TrustedKeys: []pack.Key{key}, PollWait: 1500 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	s.agents, s.byCred = e.s.agents, e.s.byCred // the same agent, on a server with a short ReadTimeout
	for _, h2 := range []bool{false, true} {
		hs := httptest.NewUnstartedServer(s.Handler())
		hs.Config.ReadTimeout = 500 * time.Millisecond
		hs.EnableHTTP2 = h2
		hs.StartTLS()
		checkinOnce(t, hs, a, h2)
		hs.Close()
	}
}

func checkinOnce(t *testing.T, hs *httptest.Server, a *simAgent, h2 bool) {
	body, _ := json.Marshal(protocol.CheckinRequest{Status: a.st})
	req, _ := http.NewRequest("POST", hs.URL+"/v1/agent/checkin", bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+a.cred)
	start := time.Now()
	resp, err := hs.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out protocol.CheckinResponse
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || resp.Header.Get("Molt-Held-Ms") == "" || (resp.ProtoMajor == 2) != h2 {
		t.Fatalf("%s after %s: status %d, decode %v, held %q", resp.Proto, time.Since(start), resp.StatusCode, err, resp.Header.Get("Molt-Held-Ms"))
	}
	if out.Settings.PollSeconds != 1 {
		t.Fatalf("settings: %+v", out.Settings)
	}
}
