//go:build !solaris && !aix

package server

import _ "modernc.org/sqlite" // pure Go, so the server cross-builds without cgo

const sqliteAvailable = true
