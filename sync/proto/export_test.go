package proto

// SetMaxChanges lowers the bound on changes and entries for a test and
// returns a function that restores it.
func SetMaxChanges(n int) (restore func()) {
	old := maxChanges
	maxChanges = n
	return func() { maxChanges = old }
}
