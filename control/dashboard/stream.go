package dashboard

import (
	"bufio"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/sockmon/sockmon/control"
	"github.com/sockmon/sockmon/metrics"
	"github.com/valyala/fasthttp"
)

// The live stream: GET /dashboard/events answers text/event-stream on a
// connection taken over from fasthttp (its write timeout is per response,
// which a stream never ends), one "status" event every interval. Every
// write has a deadline of WriteTimeout: a reader that stalls fills the
// socket buffers, the write times out and the stream is closed; nothing is
// queued for it.

// Event is the data of a "status" event and of GET /dashboard/api/status.
type Event struct {
	Time    time.Time            `json:"time"`
	Version string               `json:"version"`
	Status  *control.AdminStatus `json:"status"`
	// Points are the history points of the last minute at the finest
	// resolution, for the live graphs to append the ones they lack.
	Points       []metrics.Point `json:"points"`
	ResolutionMs int64           `json:"resolutionMs"`
}

// snapshot returns the marshalled Event, computed at most once per half
// interval whatever the number of streams.
func (d *Dashboard) snapshot(now time.Time) ([]byte, error) {
	d.snapMu.Lock()
	defer d.snapMu.Unlock()
	if d.snapBody != nil && now.Sub(d.snapAt) < d.opts.Interval/2 {
		return d.snapBody, nil
	}
	st, err := d.ctl.AdminStatus()
	if err != nil {
		return nil, err
	}
	h := d.ctl.MetricsHistory(control.HistoryOptions{From: now.Add(-time.Minute)})
	b, err := json.Marshal(Event{Time: now.UTC(), Version: d.opts.Version, Status: st, Points: h.Points, ResolutionMs: h.ResolutionMs})
	if err != nil {
		return nil, err
	}
	d.snapAt, d.snapBody = now, b
	return b, nil
}

// acquire takes a stream slot; false when MaxClients streams are open or
// the dashboard is shut down.
func (d *Dashboard) acquire(c net.Conn) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed || len(d.streams) >= d.opts.MaxClients {
		return false
	}
	d.streams[c] = struct{}{}
	d.wg.Add(1)
	return true
}

func (d *Dashboard) release(c net.Conn) {
	d.mu.Lock()
	delete(d.streams, c)
	d.mu.Unlock()
	d.wg.Done()
}

// Streams returns the number of live streams.
func (d *Dashboard) Streams() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.streams)
}

func (d *Dashboard) events(ctx *fasthttp.RequestCtx) {
	s := d.apiSession(ctx, false)
	if s == nil {
		return
	}
	if d.Streams() >= d.opts.MaxClients {
		ctx.Response.Header.Set("Retry-After", "5")
		control.WriteError(ctx, &control.Error{Status: http.StatusServiceUnavailable, Code: control.CodeUnavailable,
			Message: "too many live dashboards on this node (--dashboard-max-clients " + strconv.Itoa(d.opts.MaxClients) + ")"})
		return
	}
	id, sub := s.id, s.sub
	ctx.HijackSetNoResponse(true)
	ctx.Hijack(func(c net.Conn) {
		if !d.acquire(c) {
			// Lost the race for the last slot, or shutting down.
			_, _ = io.WriteString(c, "HTTP/1.1 503 Service Unavailable\r\nRetry-After: 5\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
			return
		}
		defer d.release(c)
		d.stream(c, id, sub)
	})
}

// streamHead is the response head of a stream.
var streamHead = "HTTP/1.1 200 OK\r\n" +
	"Content-Type: text/event-stream; charset=utf-8\r\n" +
	"Cache-Control: no-store\r\n" +
	"X-Accel-Buffering: no\r\n" +
	"Content-Security-Policy: " + contentSecurityPolicy + "\r\n" +
	"X-Frame-Options: DENY\r\n" +
	"Referrer-Policy: no-referrer\r\n" +
	"X-Content-Type-Options: nosniff\r\n" +
	"Connection: close\r\n\r\n"

// stop ends a stream's connection: the reads and writes blocked on it
// return at once. (Close on a connection fasthttp hijacked does nothing:
// fasthttp closes it when the hijack handler returns.)
func stop(c net.Conn) {
	_ = c.SetDeadline(time.Unix(1, 0))
	_ = c.Close()
}

// stream writes events to c until the reader goes, stalls, the session
// ends or the dashboard shuts down.
func (d *Dashboard) stream(c net.Conn, sessionID, sub string) {
	_ = c.SetReadDeadline(time.Time{})
	if tc, ok := c.(interface{ SetWriteBuffer(int) error }); ok {
		_ = tc.SetWriteBuffer(64 << 10)
	}
	gone := make(chan struct{})
	d.wg.Add(1)
	go func() {
		// The browser sends nothing after the request: a read returns when
		// it closes the connection (or Shutdown does).
		defer d.wg.Done()
		defer close(gone)
		_, _ = io.Copy(io.Discard, c)
	}()
	defer func() { stop(c); <-gone }()

	w := bufio.NewWriterSize(c, 4096)
	write := func(parts ...[]byte) error {
		_ = c.SetWriteDeadline(time.Now().Add(d.opts.WriteTimeout))
		for _, p := range parts {
			if _, err := w.Write(p); err != nil {
				return err
			}
		}
		return w.Flush()
	}
	retry := strconv.FormatInt(max(1000, 2*d.opts.Interval.Milliseconds()), 10)
	if write([]byte(streamHead), []byte("retry: "+retry+"\n\n")) != nil {
		return
	}
	t := time.NewTicker(d.opts.Interval)
	defer t.Stop()
	for {
		now := time.Now()
		if !d.sessions.alive(sessionID, now) {
			_ = write([]byte("event: signedout\ndata: {}\n\n"))
			return
		}
		body, err := d.snapshot(now)
		if err != nil {
			d.log.Warn("dashboard status", "err", err)
			body = []byte(`{"error":"cannot read the status"}`)
		}
		if err := write([]byte("event: status\ndata: "), body, []byte("\n\n")); err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				d.log.Warn("dashboard stream dropped: its reader stalled", "sub", sub, "writeTimeout", d.opts.WriteTimeout.String())
			}
			return
		}
		select {
		case <-t.C:
		case <-gone:
			return
		case <-d.ctx.Done():
			return
		}
	}
}
