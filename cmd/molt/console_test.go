package main

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/moltfleet/molt/protocol"
	"github.com/moltfleet/molt/server"
)

// TestConsoleLink: molt console link against a real server prints a link
// to the console whose code signs in once as the CLI's token; --json is
// the SigninLink; a token below admin gets the server's refusal; molt
// console alone prints its help.
func TestConsoleLink(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	srv, hs, ca := inProcessServer(t, dir, server.Options{})
	admin, err := srv.CreateToken(ctx, protocol.RoleAdmin, "ops")
	if err != nil {
		t.Fatal(err)
	}
	operator, err := srv.CreateToken(ctx, protocol.RoleOperator, "ci")
	if err != nil {
		t.Fatal(err)
	}
	conn := []string{"--server", hs.URL, "--ca", ca}
	signIn := func(code string) int {
		t.Helper()
		body, _ := json.Marshal(protocol.SessionRequest{Code: code})
		resp, err := hs.Client().Post(hs.URL+"/v1/session", "application/json", strings.NewReader(string(body)))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}

	t.Setenv(envToken, admin.Secret)
	out, errOut, code := runPack(t, append([]string{"console", "link"}, conn...)...)
	prefix := hs.URL + "/console/#signin="
	if code != 0 || !strings.HasPrefix(out, prefix) || strings.Count(out, "\n") != 1 || !strings.Contains(errOut, "one-time sign-in link") {
		t.Fatalf("console link: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	linkCode := strings.TrimSpace(strings.TrimPrefix(out, prefix))
	if got := signIn(linkCode); got != http.StatusCreated {
		t.Errorf("signing in with the printed link: %d", got)
	}
	if got := signIn(linkCode); got != http.StatusUnauthorized {
		t.Errorf("the link's second use: %d, want 401", got)
	}

	out, errOut, code = runPack(t, append([]string{"console", "link", "--json"}, conn...)...)
	var l protocol.SigninLink
	if err := json.Unmarshal([]byte(out), &l); code != 0 || err != nil || l.URL != prefix+l.Code || l.Expires.IsZero() || errOut != "" {
		t.Fatalf("console link --json: exit %d (%v), stdout %q, stderr %q", code, err, out, errOut)
	}

	t.Setenv(envToken, operator.Secret)
	out, errOut, code = runPack(t, append([]string{"console", "link"}, conn...)...)
	if code != exitAuth || out != "" || !strings.Contains(errOut, "needs the admin role") {
		t.Errorf("console link as operator: exit %d, stdout %q, stderr %q", code, out, errOut)
	}

	out, _, code = runPack(t, "console")
	if code != 0 || !strings.Contains(out, "molt console [command]") || !strings.Contains(out, "link") {
		t.Errorf("molt console: exit %d, %q", code, out)
	}
}
