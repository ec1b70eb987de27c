// Package control is sockmon's control sidecar: a fasthttp server on its own
// port (default :8081) that answers load-balancer health checks, Kubernetes
// probes and Prometheus scrapes, and runs the admin API behind an admin JWT,
// with an audit log and persistent state in an embedded bbolt store.
//
// # Endpoints (the README's control-side table)
//
//	GET/HEAD /api/health/socket  public  Server.Health: 200 healthy/degraded, 503 unhealthy/maintenance/draining
//	POST     /api/health/socket  admin   Server.DetailedHealth
//	GET      /livez              public  Server.Livez: the engine's heartbeat only
//	GET      /readyz             public  Server.Readyz: 503 while starting, draining, in maintenance or shedding load
//	GET      /metrics            public  Server.WriteMetrics: Prometheus text 0.0.4, gzip on request
//	GET      /api/admin/socket   admin   Server.AdminStatus
//	POST     /api/admin/socket   admin   Server.Command: {"action":..., "data":{...}}
//	*        /dashboard...       session control/dashboard, mounted with Server.Mount
//
// Each endpoint is a method that copies a snapshot into a response struct and
// a thin handler that marshals it outside any lock (nats-server's monitor.go
// pattern); tests call both.
//
// # What it touches on the WebSocket side
//
// Only the Engine and Protocol interfaces it declares (engine.go), which
// *netcore.Server and *protocol.Service implement. Reads (Health, Livez,
// Readyz, /metrics, AdminStatus) use atomics, the metrics readers' mutex
// (which writers never take) and, for connection listings, the registry's
// per-shard read locks, which the message path never takes. Commands
// (SetMaintenance, SetRateLimit, Disconnect*, Broadcast...) write to
// connections through their outbound queues like any fan-out. Nothing here
// runs on the message path.
//
// # State and crash safety
//
// The audit log, alert rules, per-user rate-limit overrides and maintenance
// state live in DataDir/control.db (bbolt). A command that changes state
// commits the change and its audit record in one transaction, then applies
// it to the engine, then answers; New re-applies the stored state, so what
// was acknowledged survives a SIGKILL and maintenance mode stays on across a
// restart.
//
// # Alerts
//
// New builds the alerts engine (control/alerts) over the same store: it
// evaluates the stored rules (and a rules file applied through
// Server.Alerts) on a metrics snapshot every interval, keeps its history and
// silences in the store, and notifies. alerts.go holds its admin actions and
// Server.Remediate, the engine's Remediator: load shedding and maintenance,
// each call audited as actor "alerts".
//
// # Goroutines
//
// Serve runs fasthttp's accept loop and workers; Shutdown stops them
// (fasthttp's worker-pool cleaner exits within a second after). The
// only other goroutine is the engine shutdown started by an emergency
// shutdown when no Config.OnEmergencyShutdown is set, which Shutdown cancels
// and waits for, and the alerts engine's (evaluation, hooks, one sender per
// channel), which Shutdown closes, giving the senders at most two seconds to
// deliver what they hold. Config.OnEmergencyShutdown itself runs on a goroutine of
// its own that Shutdown does not wait for, since it is expected to call
// Shutdown.
package control
