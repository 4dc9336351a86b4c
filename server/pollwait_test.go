package server

import (
	"context"
	"encoding/pem"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/moltfleet/molt/agent"
	"github.com/moltfleet/molt/config"
	"github.com/moltfleet/molt/protocol"
	"github.com/moltfleet/molt/updater/pack"
)

func TestHoldFor(t *testing.T) {
	for _, tc := range []struct {
		poll time.Duration
		wait int
		want time.Duration
	}{
		{60 * time.Second, 0, 60 * time.Second},   // an agent that does not say: the default
		{600 * time.Second, 0, 60 * time.Second},  // ... never more than the default
		{600 * time.Second, 90, 90 * time.Second}, // what the agent waits
		{600 * time.Second, 600, 600 * time.Second},
		{30 * time.Second, 600, 30 * time.Second}, // the setting, when shorter
		{20 * time.Millisecond, 60, 20 * time.Millisecond},
	} {
		if got := holdFor(tc.poll, tc.wait); got != tc.want {
			t.Errorf("holdFor(%s, %d) = %s, want %s", tc.poll, tc.wait, got, tc.want)
		}
	}
}

// TestPollSecondsAboveAgentDeadline: agents.poll-seconds raised to its
// maximum while the agent still waits what it learned before. The real
// agent client against the real handler over HTTPS: the check-in is held
// for what the agent announced, not cut by its deadline, and the answer
// teaches the agent the new wait.
func TestPollSecondsAboveAgentDeadline(t *testing.T) {
	e := newEnv(t)
	a := e.newAgent("a", "1.0.0")
	key, _ := testKey()
	s, err := New(context.Background(), Options{DataDir: t.TempDir(), TrustedKeys: []pack.Key{key}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	s.agents, s.byCred = e.s.agents, e.s.byCred
	s.settings["agents.poll-seconds"] = "600"
	hs := httptest.NewTLSServer(s.Handler())
	defer hs.Close()
	ca := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: hs.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	hc, err := agent.NewHTTPClient(&config.Config{Server: hs.URL, CAFile: ca}, func() string { return a.cred })
	if err != nil {
		t.Fatal(err)
	}
	cl, err := agent.NewClient(agent.ClientOptions{Server: hs.URL, HTTP: hc})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	resp, err := cl.Checkin(context.Background(), a.cred, protocol.CheckinRequest{Status: a.st}, time.Second)
	took := time.Since(start)
	if err != nil {
		t.Fatalf("check-in after %s: %v", took, err)
	}
	if took < 900*time.Millisecond || took > 10*time.Second {
		t.Errorf("held %s, want about the 1 s the agent announced", took)
	}
	if resp.Settings.PollSeconds != protocol.MaxPollSeconds {
		t.Errorf("poll_seconds %d, want %d", resp.Settings.PollSeconds, protocol.MaxPollSeconds)
	}
	// Out of range wait_seconds are refused.
	for _, w := range []int{-1, protocol.MaxPollSeconds + 1} {
		st := a.st
		if code, _ := e.do("POST", "/v1/agent/checkin", a.cred, protocol.CheckinRequest{Status: st, WaitSeconds: w}, nil); code != 400 {
			t.Errorf("wait_seconds %d: %d, want 400", w, code)
		}
	}
}
