package updater

import "github.com/moltfleet/molt/platform"

func maxRSSKB() (int64, error) { return 0, platform.ErrNotSupported }
