// Package protocol is sockmon's client protocol on the netcore engine: JSON
// envelopes on text frames (echo, ping, join, leave, publish, rpc), binary
// frames echoed, rooms and fan-out, server pushes (broadcast, system),
// client authentication with JWT, allowed origins, per-IP connection rates,
// per-connection message rates with escalating bans, and custom rate limits.
//
//	eng, _ := netcore.New(netcore.Config{...})
//	svc, _ := protocol.New(eng, protocol.Config{JWTSecret: secret})
//	go eng.ListenAndServe()
//
// New registers the protocol's routes (Config.Path, and Config.EchoPath for
// a verbatim echo) on the engine, each admitted by the Service (Admit), and
// hooks that tell clients about maintenance and shutdown. Each connection
// gets a session that holds its limiter, strike counts and rooms; the engine
// calls its HandleMessage on the connection's reader and its Closed once.
//
// The hot path (an echo or a ping) allocates nothing: envelopes are scanned
// in place (envelope.go) and replies appended into pooled buffers
// (reply.go). Lock order: session.mu, then the hub's shard and room locks
// (hub.go); a fan-out copies the members and writes outside every lock.
package protocol
