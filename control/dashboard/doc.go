// Package dashboard is sockmon's real-time dashboard: a page served on the
// control port under /dashboard from files embedded in the binary (it works
// on an air-gapped node), signed in with an admin token once, kept live by
// Server-Sent Events.
//
// # Routes (under the prefix control.Server.Mount gives it)
//
//	GET  /dashboard              the page, or the sign-in form without a session
//	POST /dashboard/login        form field token: 303 to /dashboard with the session cookie, 401 with the form otherwise
//	POST /dashboard/logout       form field csrf: ends the session, 303 to /dashboard
//	GET  /dashboard/events       text/event-stream: the status every Options.Interval (at most MaxClients streams, 503 beyond)
//	GET  /dashboard/api/status   the same status once (JSON)
//	POST /dashboard/api/action   {"action":...,"data":{...}} with X-CSRF-Token: get_* actions through control.Server.Read,
//	                             every other through control.Server.Command (audited, the session's sub as actor)
//	GET  /dashboard/static/...   the page's scripts, styles and uPlot
//
// # Sessions
//
// A sign-in verifies the token with control.Server.Authenticate (the admin
// API's rules, lockout and log) and keeps a session in memory: its sub,
// role, expiry (no later than the token's) and CSRF token. The cookie holds
// the session id and an HMAC of it under a key drawn when the process
// starts, so a restart or a logout revokes every cookie; it is HttpOnly,
// SameSite=Strict, Secure over TLS, and the token itself is never stored,
// logged or put in a URL. A VIEWER's page shows no control, and the admin
// actions refuse its POSTs with 403 whatever the page does.
//
// # Cost
//
// The streams read the same snapshot as health and /metrics
// (control.Server.AdminStatus), computed at most once per half interval
// whatever the number of streams and marshalled once for all of them. A
// stream whose reader stalls is dropped when a write has not completed in
// Options.WriteTimeout; nothing is queued for it.
//
// # Goroutines
//
// Each stream runs on the goroutine fasthttp gives a hijacked connection,
// plus one that reads the connection to see it close. Shutdown closes every
// stream and waits for both.
package dashboard
