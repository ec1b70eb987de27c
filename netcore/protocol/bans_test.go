package protocol

import (
	"net/netip"
	"slices"
	"testing"
	"time"
)

// Escalation and decay under an injected clock.
func TestBansEscalateAndDecay(t *testing.T) {
	p := banPolicy{base: time.Minute, max: 10 * time.Minute, decay: time.Hour}
	min := int64(time.Minute)
	var b bans
	if banned, _ := b.banned("ip:1.2.3.4", 0); banned {
		t.Fatal("banned before any offence")
	}
	// Each repeat doubles, up to max.
	at := int64(0)
	for i, want := range []time.Duration{time.Minute, 2 * time.Minute, 4 * time.Minute, 8 * time.Minute, 10 * time.Minute, 10 * time.Minute} {
		if d := b.offend("ip:1.2.3.4", at, p); d != want {
			t.Fatalf("offence %d: ban %v, want %v", i+1, d, want)
		}
		if banned, left := b.banned("ip:1.2.3.4", at+1); !banned || left != want-1 {
			t.Fatalf("offence %d: banned %v for %v", i+1, banned, left)
		}
		at += int64(want) // the next offence as soon as the ban ends
	}
	if banned, _ := b.banned("ip:1.2.3.4", at); banned {
		t.Fatal("still banned when the ban ran out")
	}
	// Another key is independent.
	if d := b.offend("user:ann", at, p); d != time.Minute {
		t.Fatalf("a fresh key starts at %v", d)
	}
	// Quiet time after the ban undoes one doubling per decay period: the
	// level was 5 (capped at max); three hours later it is 2 and the next
	// offence makes it 3 (8 minutes).
	if d := b.offend("ip:1.2.3.4", at+3*int64(time.Hour), p); d != 8*time.Minute {
		t.Fatalf("after 3 decay periods: ban %v, want 8m", d)
	}
	// expire forgets a key only once its level has decayed to nothing.
	now := at + 3*int64(time.Hour) + 8*min
	b.expire(now, p)
	if b.m["ip:1.2.3.4"] == nil {
		t.Fatal("expired a key that still has a level")
	}
	b.expire(now+5*int64(time.Hour), p)
	if b.m["ip:1.2.3.4"] != nil || b.m["user:ann"] != nil {
		t.Fatalf("decayed keys kept: %v", b.m)
	}
}

// Escalation counts offences, not connections: twenty connections from one
// address flooding at once are closed within milliseconds of each other, and
// all but the first offend while the ban they earned is in force. Those
// neither double the ban nor extend it; a repeat after the ban has run out
// doubles it.
func TestBansCountOffencesNotConnections(t *testing.T) {
	p := banPolicy{base: time.Minute, max: time.Hour, decay: 10 * time.Minute}
	const key = "ip:10.0.0.1"
	var b bans
	offend := func(at int64, want time.Duration) {
		t.Helper()
		if d := b.offend(key, at, p); d != want {
			t.Fatalf("offence at %s: ban %s, want %s", time.Duration(at), d, want)
		}
		if banned, left := b.banned(key, at); !banned || left != want {
			t.Fatalf("after the offence at %s: banned %v for %s, want %s", time.Duration(at), banned, left, want)
		}
	}
	offend(0, time.Minute)
	// The other 19 connections of the flood, 300 µs apart: the ban in force,
	// counted down, never doubled.
	for i := int64(1); i < 20; i++ {
		at := i * int64(300*time.Microsecond)
		offend(at, time.Minute-time.Duration(at))
	}
	// Late in the ban: still the same ban.
	offend(int64(59*time.Second), time.Second)
	if lvl := b.m[key].level; lvl != 0 {
		t.Fatalf("level %d after one ban's offences, want 0", lvl)
	}
	if banned, _ := b.banned(key, int64(time.Minute)); banned {
		t.Fatal("banned past the first ban's minute")
	}
	// A repeat once the ban ran out doubles it, and its own flood does not.
	at := int64(time.Minute + time.Second)
	offend(at, 2*time.Minute)
	for i := int64(1); i < 20; i++ {
		offend(at+i, 2*time.Minute-time.Duration(i))
	}
	// The next repeat after that ban: doubled once more.
	at += int64(2 * time.Minute)
	offend(at, 4*time.Minute)
	// Quiet for two decay periods after that ban ends: two doublings
	// forgiven, so the next offence is level 2-2+1 = 1 (2 minutes).
	at += int64(4*time.Minute + 20*time.Minute)
	offend(at, 2*time.Minute)
}

// The per-IP connection limiter: a bucket per IP, expired when idle.
func TestIPLimiter(t *testing.T) {
	var l ipLimiter
	l.init()
	a, c := netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("10.0.0.2")
	for i := 0; i < 3; i++ {
		if ok, _ := l.allow(a, 3, 3*time.Second, 0); !ok {
			t.Fatalf("connection %d of the burst refused", i+1)
		}
	}
	if ok, retry := l.allow(a, 3, 3*time.Second, 0); ok || retry != time.Second {
		t.Fatalf("fourth connection: ok %v retry %v, want refused for 1s", ok, retry)
	}
	if ok, _ := l.allow(c, 3, 3*time.Second, 0); !ok {
		t.Fatal("another IP was limited")
	}
	l.expire(1)
	if ok, _ := l.allow(a, 3, 3*time.Second, 2); !ok {
		t.Fatal("an expired bucket still limits")
	}
	if ok, _ := l.allow(a, 0, time.Second, 2); !ok {
		t.Fatal("limit 0 refused")
	}
}

// sharedBans records what a BanShare is told.
type sharedBans struct{ got []string }

func (s *sharedBans) ShareBan(key string, d time.Duration, level int) {
	s.got = append(s.got, key+" "+d.String()+" "+string(rune('0'+level)))
}

// A ban that begins or doubles is shared once; an offence during it is
// not. An imported ban is checked like a local one, keeps a longer ban in
// force and the higher level, and is not shared again.
func TestBansShareAndImport(t *testing.T) {
	p := banPolicy{base: time.Minute, max: time.Hour, decay: time.Hour}
	var b bans
	sh := &sharedBans{}
	var bs BanShare = sh
	b.share.Store(&bs)
	b.offend("user:ann", 0, p)
	b.offend("user:ann", int64(time.Second), p) // during the ban
	b.offend("user:ann", int64(time.Minute), p) // after it: doubles
	if want := []string{"user:ann 1m0s 0", "user:ann 2m0s 1"}; !slices.Equal(sh.got, want) {
		t.Fatalf("shared %q, want %q", sh.got, want)
	}
	b.impose("user:bob", int64(5*time.Minute), 2)
	if banned, left := b.banned("user:bob", int64(time.Minute)); !banned || left != 4*time.Minute {
		t.Fatalf("imported ban: banned %v for %v", banned, left)
	}
	b.impose("user:bob", int64(2*time.Minute), 0) // shorter: the longer stays
	if banned, left := b.banned("user:bob", int64(4*time.Minute)); !banned || left != time.Minute {
		t.Fatalf("a shorter import cut the ban: banned %v for %v", banned, left)
	}
	if b.m["user:bob"].level != 2 {
		t.Fatalf("level %d, want 2", b.m["user:bob"].level)
	}
	if len(sh.got) != 2 {
		t.Fatalf("an import was shared: %q", sh.got)
	}
}
