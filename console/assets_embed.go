//go:build !noconsole

package console

import "embed"

//go:embed assets
var assets embed.FS
