package main

import (
	"net/http"

	"github.com/moltfleet/molt/agent"
	"github.com/moltfleet/molt/config"
)

// newOrders makes the HTTP client for the server (shared by the check-in
// loop and the updater's downloads) and the check-in loop.
func newOrders(cfg *config.Config, credential func() string) (agent.Orders, *http.Client, error) {
	hc, err := agent.NewHTTPClient(cfg, credential)
	if err != nil {
		return nil, nil, err
	}
	cl, err := agent.NewClient(agent.ClientOptions{Server: cfg.Server, HTTP: hc})
	if err != nil {
		return nil, nil, err
	}
	return agent.NewCheckin(agent.CheckinOptions{Client: cl}), hc, nil
}
