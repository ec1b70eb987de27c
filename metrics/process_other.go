//go:build !linux

package metrics

// readProc reports that /proc statistics are unavailable on this system.
func readProc() (procReading, error) {
	return procReading{}, ErrProcUnavailable
}
