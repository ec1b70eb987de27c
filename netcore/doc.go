// Package netcore is sockmon's WebSocket engine: RFC 6455 on a netpoll
// event loop, with the byte-level work done by netcore/wsproto. It knows
// routes, admission, connections, limits of size and time, write queues,
// maintenance and graceful drain, and nothing of any application protocol:
// sockmon's JSON protocol (rooms, publishes, client auth, rate limits and
// bans) is netcore/protocol, one Handler and Admitter among possible others.
//
// # Embedding
//
//	srv, err := netcore.New(netcore.Config{Addr: ":8080"})
//	srv.Handle(netcore.Route{Path: "/ws", Handler: myHandler, Admitter: myAdmitter})
//	srv.OnDisconnect(func(e netcore.DisconnectEvent) { ... }) // hooks before Serve
//	go srv.ListenAndServe()
//	...
//	srv.Shutdown(ctx) // drain: readiness off, wait, close with 1001 in batches
//
// or, for the sockmon protocol, protocol.New(srv, protocol.Config{...}),
// which registers its routes and hooks. Config's zero fields take the
// defaults of setDefaults; New reports every configuration error at once.
// Every route has an Admitter (netcore.AdmitAll admits everyone), so no
// path skips admission by accident; after it, the engine refuses every
// route's upgrades in maintenance, while draining and at MaxConns.
//
// # The seed's JavaScript API, and where it went
//
//	getHealthStatus()            control package (GET /api/health/socket); Server.Stats, Server.Ready, Metrics().Snapshot()
//	getConnectionsData()         protocol.Service.Connections (rooms included); Server.Connections
//	forceDisconnectUser(id)      Server.DisconnectUser(userID, reason); Server.DisconnectSocket(id, reason)
//	setMaintenanceMode(on)       Server.SetMaintenance(on, reason, drain)
//	setCustomRateLimit(...)      protocol.Service.SetRateLimit
//	on('client_disconnect', f)   Server.OnDisconnect(func(DisconnectEvent))
//	on('message_error', f)       protocol.Service.OnMessageError
//
// # Concurrency
//
// netpoll runs a connection's reader on a pooled goroutine whenever bytes
// arrive; an idle connection holds no goroutine and no timer (one sweeper
// goroutine per server enforces every deadline). Session.HandleMessage
// calls for one connection are sequential. Writes from anywhere
// (Conn.WriteMessage, FanOut) are safe for concurrent use and never block
// on the peer: conn_write.go draws the writer token's state machine. Lock
// order: registryShard.mu, Conn.wmu and Conn.bufMu are leaves (nothing is
// taken while holding them); the protocol's locks are never held across an engine call
// that takes one of them.
//
// netpoll keeps some settings in package variables (buffer sizes, the task
// runner, its logger): New sets them once per process, to constants every
// Server shares. sockmon uses a vendored netpoll with three small changes
// (third_party/netpoll/PATCHES.md).
package netcore
