package control

import (
	"net/http"

	"github.com/valyala/fasthttp"
	"github.com/valyala/fasthttp/pprofhandler"
)

// PathPprof is where the Go runtime's profiles are served on the control
// port once EnableProfiling is called (sockmon serve --pprof): net/http/pprof's
// index at /debug/pprof/, cmdline, profile (CPU, ?seconds=N, default 30),
// symbol, trace, and the named profiles (heap, goroutine, allocs, block,
// mutex, threadcreate), the paths `go tool pprof` expects.
const PathPprof = "/debug/pprof"

// EnableProfiling serves the runtime's profiles under PathPprof to ADMIN
// tokens only: 401 without a valid admin token, 403 for a VIEWER (a
// profile shows the program's internals and a CPU profile or trace costs
// the node CPU for as long as it runs), the same refusals, lockout and
// refusal log lines as the admin API. Until it is called PathPprof answers
// 404. Call it before Serve. The client port never serves the profiles
// (its only HTTP paths are PublicHealthPaths).
//
// Like the admin GET, a profile read is not audited (the audit log records
// admin POSTs); only GET and HEAD are answered (405 otherwise), so symbol
// lookups go by query string, never by POST body.
func (s *Server) EnableProfiling() error {
	return s.Mount(PathPprof, s.handlePprof)
}

func (s *Server) handlePprof(ctx *fasthttp.RequestCtx) {
	if !ctx.IsGet() && !ctx.IsHead() {
		methodNotAllowed(ctx, "GET, HEAD")
		return
	}
	path := string(ctx.Path())
	ip := s.clientIP(ctx)
	p, r := s.authenticate(ctx, ip)
	if r != nil {
		s.refuseUnauthenticated(ctx, path, ip, r, 0)
		return
	}
	if p.Role != AdminRole {
		writeError(ctx, &Error{Status: http.StatusForbidden, Code: CodeForbidden,
			Message: "role " + p.Role + " may not read the runtime profiles: they need the ADMIN role"})
		return
	}
	if path == PathPprof {
		// The index's links are relative to /debug/pprof/.
		ctx.Redirect(PathPprof+"/", http.StatusMovedPermanently)
		return
	}
	pprofhandler.PprofHandler(ctx)
}
