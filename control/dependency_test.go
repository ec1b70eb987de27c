package control

import (
	"io"
	"log/slog"
	"slices"
	"testing"

	"github.com/sockmon/sockmon/netcore/backplane"
	"github.com/sockmon/sockmon/netcore/backplane/redistest"
	"github.com/sockmon/sockmon/netcore/wstest"
)

// A dependency that is degraded makes health "degraded" (200) with its
// reason, and healthy again when it recovers: the Redis backplane, with a
// real redis-server stopped and restarted.
func TestHealthDependencyDegraded(t *testing.T) {
	redis := redistest.Start(t)
	rdb, err := backplane.NewClient(redis.URL() + "?dial_timeout=200ms")
	if err != nil {
		t.Fatal(err)
	}
	defer rdb.Close()
	bp, err := backplane.NewRooms(rdb, backplane.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	f := newFixture(t, func(c *Config) { c.Dependencies = []Dependency{bp} })
	bp.Start(f.proto.UseBroker(bp))
	defer bp.Close()

	wstest.WaitFor(t, "healthy with the backplane up", func() bool { return f.ctl.Health().Status == StatusHealthy })
	redis.Stop()
	wstest.WaitFor(t, "degraded while redis is down", func() bool {
		h := f.ctl.Health()
		return h.Status == StatusDegraded && h.HTTPStatus() == 200 && slices.Contains(h.Reasons, backplane.ReasonUnavailable)
	})
	redis.Restart()
	wstest.WaitFor(t, "healthy again", func() bool { return f.ctl.Health().Status == StatusHealthy })
}
