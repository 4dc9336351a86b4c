package platform

import "errors"

// ErrUnknownSignal is returned for a stop signal name this OS does not
// know.
var ErrUnknownSignal = errors.New("unknown signal")
