package protocol

import (
	"testing"
	"time"
)

// GCRA arithmetic under an injected clock (nanoseconds).
func TestGCRA(t *testing.T) {
	const s = int64(time.Second)
	type step struct {
		at        int64
		ok        bool
		retryWant time.Duration
	}
	for _, tc := range []struct {
		name   string
		limit  int
		window time.Duration
		steps  []step
	}{
		{"burst then one per interval", 2, time.Second, []step{
			{0, true, 0}, {0, true, 0}, // the burst: 2 at once
			{0, false, 500 * time.Millisecond}, // next one in 1s/2
			{s / 2, true, 0},
			{s / 2, false, 500 * time.Millisecond},
			{s, true, 0},
		}},
		{"idle time refills at most the burst", 3, 3 * time.Second, []step{
			{0, true, 0}, {0, true, 0}, {0, true, 0},
			{100 * s, true, 0}, {100 * s, true, 0}, {100 * s, true, 0},
			{100 * s, false, time.Second},
		}},
		{"limit 1", 1, time.Minute, []step{
			{0, true, 0}, {s, false, 59 * time.Second}, {60 * s, true, 0},
		}},
		{"zero limit allows everything", 0, time.Second, []step{
			{0, true, 0}, {0, true, 0}, {0, true, 0},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := newGCRA(tc.limit, tc.window)
			for i, st := range tc.steps {
				ok, retry := g.allow(st.at)
				if ok != st.ok || retry != st.retryWant {
					t.Fatalf("step %d at %v: allow = %v, retry %v; want %v, %v", i, time.Duration(st.at), ok, retry, st.ok, st.retryWant)
				}
			}
		})
	}
}

// The zero gcra allows everything.
func TestGCRAZeroValue(t *testing.T) {
	var g gcra
	for i := int64(0); i < 1000; i++ {
		if ok, _ := g.allow(i); !ok {
			t.Fatal("the zero limiter refused")
		}
	}
}

// Overrides: the socket's wins over the user's; limit 0 removes one;
// forgetting a socket drops its override.
func TestOverrides(t *testing.T) {
	var o overrides
	if _, ok := o.lookup(1, "ann"); ok {
		t.Fatal("empty overrides matched")
	}
	o.set(RateLimit{UserID: "ann", Limit: 5, Window: time.Second})
	o.set(RateLimit{SocketID: 1, Limit: 9, Window: time.Second})
	if rl, _ := o.lookup(1, "ann"); rl.Limit != 9 {
		t.Fatalf("socket override did not win: %+v", rl)
	}
	if rl, _ := o.lookup(2, "ann"); rl.Limit != 5 {
		t.Fatalf("user override: %+v", rl)
	}
	if _, ok := o.lookup(2, ""); ok {
		t.Fatal("an anonymous socket matched a user override")
	}
	o.forgetSocket(1)
	if rl, _ := o.lookup(1, "ann"); rl.Limit != 5 {
		t.Fatalf("after forgetSocket: %+v", rl)
	}
	o.set(RateLimit{UserID: "ann"})
	if _, ok := o.lookup(1, "ann"); ok || len(o.list()) != 0 {
		t.Fatalf("limit 0 did not remove the override: %v", o.list())
	}
}
