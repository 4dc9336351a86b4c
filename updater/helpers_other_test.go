package updater

import "fmt"

func otherHelper(mode string) error {
	switch mode {
	case "memstage":
		return helperMemStage()
	case "sleep":
		return helperSleep()
	case "winflow":
		return helperWinFlow()
	case "lock":
		return helperLock()
	}
	return fmt.Errorf("unknown helper mode %q", mode)
}
