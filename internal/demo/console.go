package demo

import (
	"context"
	"fmt"
	"path/filepath"
)

// showConsole prints where the web console is and a one-time link that
// signs in to it with the admin token, so that a reader can watch the
// story there too. The link is the admin token's to hand out: it is
// made by the API the CLI uses (molt console link).
func (d *demo) showConsole(ctx context.Context) error {
	l, err := d.client.CreateSigninLink(ctx)
	if err != nil {
		return fmt.Errorf("console sign-in link: %w", err)
	}
	d.say("console: %s/console/ (the browser warns of the --dev CA, %s, until you trust it)", d.url(), filepath.Join(d.data, "tls", "ca.pem"))
	d.say("sign in once, within 10 minutes, as admin: %s", l.URL)
	return nil
}

// hold keeps the fleet running after the story, with a fresh sign-in link
// (the first may have expired), until ctx ends: the reader explores the
// console and the CLI meanwhile. Its end is the demo's normal end.
func (d *demo) hold(ctx context.Context) error {
	d.held = true
	d.section("The fleet keeps running for you to explore")
	if err := d.showConsole(ctx); err != nil {
		return err
	}
	d.say("The CLI: export MOLT_SERVER=%s MOLT_CA=%s MOLT_TOKEN_FILE=%s", d.url(),
		filepath.Join(d.data, "tls", "ca.pem"), filepath.Join(d.data, "admin.token"))
	d.say("Press Ctrl-C to stop it all (the directory is kept with --keep).")
	<-ctx.Done()
	return nil
}
