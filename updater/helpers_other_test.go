package updater

import "fmt"

func otherHelper(mode string) error {
	switch mode {
	case "memstage":
		return helperMemStage()
	}
	return fmt.Errorf("unknown helper mode %q", mode)
}
