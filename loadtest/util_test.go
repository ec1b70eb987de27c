package loadtest

import (
	"context"
	"strings"
	"testing"
)

type testWriter struct{ strings.Builder }

func runOrFail(t *testing.T, cfg Config) *Report {
	t.Helper()
	rep, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	return rep
}
