package main

import "testing"

func TestHandNotesSurviveARewrite(t *testing.T) {
	old := "# Capacity results\n\n## Results\n\n| a |\n\n## Notes on the runs of today (written by hand)\n\nwhy p99 moved\n"
	if got, want := handNotes(old), "\n## Notes on the runs of today (written by hand)\n\nwhy p99 moved\n"; got != want {
		t.Fatalf("handNotes = %q, want %q", got, want)
	}
	if got := handNotes("# Capacity results\n\n## Results\n"); got != "" {
		t.Fatalf("handNotes without notes = %q", got)
	}
}
