// Package scenarios runs the seed scenarios of molt's reference documents
// with real processes: molt serve, supervisors and agents built at several
// versions, in temporary homes on loopback, driven through the molt CLI
// the way an operator does (see docs/scenarios.md). It has no code of its
// own outside its tests; they need a Unix system.
package scenarios
