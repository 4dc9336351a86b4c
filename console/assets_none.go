//go:build noconsole

package console

import "embed"

// assets is empty in a build with the noconsole tag, which only
// scripts/console-size.sh makes: it measures what the console adds.
var assets embed.FS
