package main

import "context"

// catchStop catches nothing on Windows: there is no exec in place, and
// platform.RunService takes the SCM's stop (or Ctrl-C by hand). Catching
// SIGTERM here would turn a user's logoff (CTRL_LOGOFF_EVENT, which Go
// delivers as SIGTERM) into a stop of the service.
func catchStop() (context.Context, context.CancelFunc) {
	return context.WithCancel(context.Background())
}
