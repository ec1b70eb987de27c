// Package netcore is sockmon's WebSocket engine: RFC 6455 on a netpoll event
// loop with gobwas/ws framing, the sockmon client protocol (JSON envelopes,
// rooms, publishes), client authentication, rate limits with escalating
// bans, maintenance and graceful drain. It is also a library: a Go program
// can embed it with its own message handler.
//
// # Embedding
//
//	srv, err := netcore.New(netcore.Config{Addr: ":8080", Handler: myHandler})
//	srv.OnDisconnect(func(e netcore.DisconnectEvent) { ... }) // hooks before Serve
//	go srv.ListenAndServe()
//	...
//	srv.Shutdown(ctx) // drain: readiness off, wait, close with 1001 in batches
//
// Config's zero fields take the defaults of setDefaults; New reports every
// configuration error at once. A nil Config.Handler serves the sockmon
// protocol; any Handler replaces it (see the example).
//
// # The seed's JavaScript API, and where it went
//
//	getHealthStatus()            control package (GET /api/health/socket); Server.Stats, Server.Ready, Metrics().Snapshot()
//	getConnectionsData()         Server.Connections(ConnQuery) (filter, sort, page)
//	forceDisconnectUser(id)      Server.DisconnectUser(userID, reason); Server.DisconnectSocket(id, reason)
//	setMaintenanceMode(on)       Server.SetMaintenance(on, reason, drain)
//	setCustomRateLimit(...)      Server.SetRateLimit(RateLimit{UserID or SocketID, Limit, Window})
//	on('client_disconnect', f)   Server.OnDisconnect(func(DisconnectEvent))
//	on('message_error', f)       Server.OnMessageError(func(MessageErrorEvent))
//
// Also: Server.OnConnect, Server.OnMessage, Server.Broadcast, Server.Publish,
// Server.System, Server.DisconnectAll, Server.Rooms, Server.RateLimits.
//
// # Concurrency
//
// netpoll runs a connection's reader on a pooled goroutine whenever bytes
// arrive; an idle connection holds no goroutine and no timer (one sweeper
// goroutine per server enforces every deadline). Handler.HandleMessage calls
// for one connection are sequential. Writes from anywhere (Conn.WriteMessage,
// broadcasts) are safe for concurrent use and never block on the peer: the
// write path in conn_write.go describes the writer token. Lock order:
// hubShard.mu before room.mu; registryShard.mu and Conn.wmu are leaves.
//
// netpoll keeps some settings in package variables (buffer sizes, the task
// runner); New sets them once per process. sockmon uses a vendored netpoll
// with two small changes (third_party/netpoll/PATCHES.md).
package netcore
