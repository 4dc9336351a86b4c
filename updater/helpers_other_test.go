package updater

import "fmt"

func otherHelper(mode string) error { return fmt.Errorf("unknown helper mode %q", mode) }
