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
