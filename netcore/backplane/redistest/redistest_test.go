package redistest

import "testing"

func TestStartStopRestart(t *testing.T) {
	s := Start(t)
	if r, err := s.Do("SET", "k", "v"); err != nil || r != "+OK" {
		t.Fatalf("SET: %q %v", r, err)
	}
	s.Stop()
	if _, err := s.Do("PING"); err == nil {
		t.Fatal("PING answered after Stop")
	}
	s.Restart()
	if r, err := s.Do("GET", "k"); err != nil || r != "$-1" {
		t.Fatalf("GET after restart without persistence: %q %v, want $-1", r, err)
	}
}
