package check

import (
	"bytes"
	"encoding/json"
	"slices"
	"strings"
	"testing"
)

func TestJSONFormat(t *testing.T) {
	for name, r := range fixtures() {
		var b bytes.Buffer
		if err := WriteJSON(&b, r); err != nil {
			t.Fatal(err)
		}
		if strings.Count(b.String(), "\n") != 1 {
			t.Errorf("%s: not one line: %q", name, b.String())
		}
		var doc map[string]any
		if err := json.Unmarshal(b.Bytes(), &doc); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		for _, k := range []string{"state", "exitCode", "summary", "problems", "checkedAt", "durationMs", "timeoutMs", "timedOut", "health", "measures"} {
			if _, ok := doc[k]; !ok {
				t.Errorf("%s: no %q", name, k)
			}
		}
		if doc["state"] != r.State.String() || doc["exitCode"] != float64(r.State) || doc["checkedAt"] != "2026-11-27T12:00:00Z" {
			t.Errorf("%s: state %v exit %v checkedAt %v", name, doc["state"], doc["exitCode"], doc["checkedAt"])
		}
		h := doc["health"].(map[string]any)
		for _, k := range []string{"url", "method", "detailed", "httpStatus", "responseTimeMs", "timedOut", "body"} {
			if _, ok := h[k]; !ok {
				t.Errorf("%s: no health.%s", name, k)
			}
		}
		if (h["body"] == nil) != (r.Health.Body == nil) || (h["responseTimeMs"] == nil) != (r.Health.Body == nil) {
			t.Errorf("%s: health %v", name, h)
		}
		if _, has := doc["canary"]; has != (r.Canary != nil) {
			t.Errorf("%s: canary present %t", name, has)
		}
		ms := doc["measures"].([]any)
		if len(ms) != len(r.Measures) {
			t.Fatalf("%s: %d measures, want %d", name, len(ms), len(r.Measures))
		}
		for i, m := range ms {
			m := m.(map[string]any)
			if m["label"] != r.Measures[i].Label || (m["value"] == nil) == r.Measures[i].Known || m["state"] != r.Measures[i].State.String() {
				t.Errorf("%s: measure %d: %v vs %+v", name, i, m, r.Measures[i])
			}
		}
	}
}

func TestJSONCanaryAndDetail(t *testing.T) {
	var b bytes.Buffer
	_ = WriteJSON(&b, fixtures()["healthy detailed with canary"])
	var doc struct {
		Health struct {
			Detailed bool
			Body     struct{ Status string }
			Detail   struct {
				Process     struct{ RSSBytes uint64 }
				Connections struct{ Accepted uint64 }
				Ready       bool
			}
		}
		Canary struct {
			OK        bool
			CloseCode int
			TotalMs   float64
			Steps     []struct {
				Name       string
				DurationMs float64
				OK         bool
			}
		}
	}
	if err := json.Unmarshal(b.Bytes(), &doc); err != nil {
		t.Fatal(err)
	}
	h, c := doc.Health, doc.Canary
	if !h.Detailed || h.Body.Status != "healthy" || h.Detail.Process.RSSBytes != 50<<20 || h.Detail.Connections.Accepted != 900 || !h.Detail.Ready {
		t.Errorf("health %+v", h)
	}
	var names []string
	for _, s := range c.Steps {
		names = append(names, s.Name)
	}
	if !c.OK || c.CloseCode != 1000 || c.TotalMs != 2.15 || !slices.Equal(names, steps[:]) || c.Steps[0].DurationMs != 1.2 {
		t.Errorf("canary %+v", c)
	}
}
