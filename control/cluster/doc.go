// Package cluster joins sockmon nodes into a cluster through the Redis
// backplane (--redis-url): the node registry behind get_cluster, admin
// commands run on every node, and the bans and per-user rate limits every
// node applies. Rooms and their fan-out are the broker's (netcore), not
// this package's.
//
// # Registry
//
// Every Interval a node writes its NodeInfo to sockmon:node:<id> with a
// TTL of 3·Interval, and its id to the sorted set sockmon:nodes (score:
// when the key expires). A node that stops cleanly deletes both; one
// killed disappears when its key expires: Nodes skips (and prunes) the ids
// whose key is gone.
//
// # Commands
//
// Command publishes {id, from, kind, data} on sockmon:cluster:cmd. Every
// other node runs it through the Handler (the control server's node-scope
// action, audited there) and publishes its Reply on
// sockmon:cluster:reply:<from>. The caller waits for the nodes the
// registry lists, each at most CommandTimeout: a node that does not answer
// in time is reported as timed out, never waited for longer; a node that
// answers without being listed (it registered meanwhile) is added.
//
// # Shared bans and rate limits
//
// A ban (ShareBan, from the protocol's escalation) is written to
// sockmon:ban:<key> with a TTL of the ban's length, indexed in
// sockmon:bans, and announced on sockmon:cluster:state; the other nodes
// keep a local copy (OnBan), so admission never asks Redis. Per-user rate
// limits (ShareRateLimit) live in the hash sockmon:ratelimits and are
// announced the same way. A node loads both when it starts and whenever
// Redis comes back after a failure (what was announced meanwhile was lost).
//
// # When Redis fails
//
// Every Redis call goes through a netcore/breaker and a short timeout.
// While Redis is unreachable the node keeps serving and its own admin API
// works for node scope; Command and Nodes return an *UnavailableError
// saying why; Degraded reports the reason. The heartbeat keeps trying (a
// probe per open period of the breaker) and re-registers the node, and
// reloads the shared state, as soon as Redis answers again. go-redis
// resubscribes the channels on its own.
//
// # Goroutines
//
// Start runs three: the heartbeat, the subscriber (over go-redis's PubSub
// channel, which runs its own), and the writer of shared bans. Handler
// calls run on goroutines of their own, at most maxHandlers at once.
// Close stops and waits for all of them.
package cluster
