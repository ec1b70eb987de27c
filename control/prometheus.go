package control

import (
	"bytes"
	"compress/gzip"
	"sync"

	"github.com/sockmon/sockmon/metrics"
	"github.com/valyala/fasthttp"
)

// GET /metrics: the Prometheus text format 0.0.4 of the metrics package,
// with its Content-Type always set (Prometheus 3 fails a scrape without
// one), gzipped when the scraper asks for it (Prometheus always does).

var gzipWriters = sync.Pool{New: func() any { return gzip.NewWriter(nil) }}

// WriteMetrics writes the exposition to buf, gzipped when gz is set.
func (s *Server) WriteMetrics(buf *bytes.Buffer, gz bool) {
	if !gz {
		s.metrics.WritePrometheus(buf)
		return
	}
	zw := gzipWriters.Get().(*gzip.Writer)
	zw.Reset(buf)
	s.metrics.WritePrometheus(zw)
	_ = zw.Close()
	zw.Reset(nil)
	gzipWriters.Put(zw)
}

func (s *Server) handleMetrics(ctx *fasthttp.RequestCtx) {
	gz := ctx.Request.Header.HasAcceptEncoding("gzip")
	var buf bytes.Buffer
	s.WriteMetrics(&buf, gz)
	ctx.SetStatusCode(fasthttp.StatusOK)
	ctx.SetContentType(metrics.ContentType)
	ctx.Response.Header.Set("Vary", "Accept-Encoding")
	if gz {
		ctx.Response.Header.Set("Content-Encoding", "gzip")
	}
	ctx.SetBody(buf.Bytes())
}
