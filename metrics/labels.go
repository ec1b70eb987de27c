package metrics

// The enums below are the only label values sockmon exports. Each is a small
// integer so that the hot path indexes an array instead of looking up a map;
// String returns the exported label value. Values outside the declared range
// are folded into a catch-all value by the recording methods, so a caller bug
// can never grow the number of series.

// Kind is the kind of a client message, the `kind` label of
// sockmon_message_duration_seconds.
type Kind uint8

// Message kinds. KindRPC is reserved for the upstream RPC message of the
// roadmap; it is exported (at zero) from the start so dashboards need no
// change when it arrives.
const (
	KindBinary Kind = iota
	KindEcho
	KindPing
	KindJoin
	KindLeave
	KindPublish
	KindRPC
	KindInvalid
	numKinds
)

var kindNames = [numKinds]string{"binary", "echo", "ping", "join", "leave", "publish", "rpc", "invalid"}

// String returns the label value of k ("invalid" for an out-of-range k).
func (k Kind) String() string {
	if k >= numKinds {
		k = KindInvalid
	}
	return kindNames[k]
}

// ParseKind maps the `type` of a JSON envelope to its Kind. Unknown types map
// to KindInvalid with ok false. It does not allocate.
func ParseKind(typ string) (k Kind, ok bool) {
	switch typ {
	case "echo":
		return KindEcho, true
	case "ping":
		return KindPing, true
	case "join":
		return KindJoin, true
	case "leave":
		return KindLeave, true
	case "publish":
		return KindPublish, true
	case "rpc":
		return KindRPC, true
	}
	return KindInvalid, false
}

// ErrorCode is the code of an error reply, the `code` label of
// sockmon_message_errors_total. The values are the error codes of the client
// protocol (netcore/protocol, listed in the README).
type ErrorCode uint8

// Error codes of the client protocol.
const (
	ErrBadRequest ErrorCode = iota
	ErrRateLimited
	ErrNotFound
	ErrUnavailable
	ErrTooLarge
	ErrInternal
	ErrTimeout
	ErrTooManyRequests
	numErrorCodes
)

var errorCodeNames = [numErrorCodes]string{"bad_request", "rate_limited", "not_found", "unavailable", "too_large", "internal", "timeout", "too_many_requests"}

// String returns the label value of c ("internal" for an out-of-range c).
func (c ErrorCode) String() string {
	if c >= numErrorCodes {
		c = ErrInternal
	}
	return errorCodeNames[c]
}

// Auth is the authentication state of a connection, the `auth` label of
// sockmon_connections and sockmon_connections_accepted_total.
type Auth uint8

// Authentication states.
const (
	Anonymous Auth = iota
	Authenticated
	numAuths
)

var authNames = [numAuths]string{"anonymous", "authenticated"}

// String returns the label value of a ("anonymous" for an out-of-range a).
func (a Auth) String() string {
	if a >= numAuths {
		a = Anonymous
	}
	return authNames[a]
}

// RejectReason is why a connection was refused before the upgrade, the
// `reason` label of sockmon_connections_rejected_total.
type RejectReason uint8

// Reasons for refusing a connection before the upgrade (the README's refusal
// table).
const (
	RejectLimit       RejectReason = iota // at --max-conns (503)
	RejectRate                            // IP connection rate exceeded (429)
	RejectBanned                          // IP banned (429)
	RejectMaintenance                     // maintenance mode (503)
	RejectDraining                        // draining for shutdown (503)
	RejectAuth                            // bad or missing token (401)
	RejectOrigin                          // origin not allowed (403)
	RejectHandshake                       // bad handshake or handshake timeout (400/426)
	RejectMemory                          // memory pressure
	RejectProxy                           // a PROXY protocol header missing, malformed or from an untrusted peer
	RejectShed                            // shedding load: an alert's remediation (503)
	numRejectReasons
)

var rejectReasonNames = [numRejectReasons]string{"limit", "rate", "banned", "maintenance", "draining", "auth", "origin", "handshake", "memory", "proxy", "shed"}

// String returns the label value of r ("handshake" for an out-of-range r).
func (r RejectReason) String() string {
	if r >= numRejectReasons {
		r = RejectHandshake
	}
	return rejectReasonNames[r]
}

// Initiator says which side ended a connection, the `initiator` label of
// sockmon_disconnections_total.
type Initiator uint8

// Sides of a connection.
const (
	InitiatorClient Initiator = iota
	InitiatorServer
	numInitiators
)

var initiatorNames = [numInitiators]string{"client", "server"}

// String returns the label value of i ("server" for an out-of-range i).
func (i Initiator) String() string {
	if i >= numInitiators {
		i = InitiatorServer
	}
	return initiatorNames[i]
}

// DisconnectReason is why a connection ended, the `reason` label of
// sockmon_disconnections_total. Use CloseCodeReason to map a WebSocket close
// code; the other values cover ends without a close frame.
type DisconnectReason uint8

// Reasons a connection ended.
const (
	ReasonNormal          DisconnectReason = iota // 1000
	ReasonGoingAway                               // 1001: client left or server shutting down
	ReasonProtocolError                           // 1002, 1003
	ReasonInvalidPayload                          // 1007: bad UTF-8
	ReasonPolicy                                  // 1008: rate-limit abuse, ban
	ReasonTooBig                                  // 1009
	ReasonInternalError                           // 1011
	ReasonRestart                                 // 1012: drain or maintenance
	ReasonTryAgainLater                           // 1013: overloaded
	ReasonAdmin                                   // 4000: disconnected by an admin
	ReasonIdleTimeout                             // no traffic or no pong in time
	ReasonSlowConsumer                            // outbound queue over its cap
	ReasonConnectionError                         // read/write error or reset, no close frame
	ReasonOther                                   // any other close code
	numDisconnectReasons
)

var disconnectReasonNames = [numDisconnectReasons]string{
	"normal", "going_away", "protocol_error", "invalid_payload", "policy", "too_big", "internal_error",
	"restart", "try_again_later", "admin", "idle_timeout", "slow_consumer", "connection_error", "other",
}

// String returns the label value of r ("other" for an out-of-range r).
func (r DisconnectReason) String() string {
	if r >= numDisconnectReasons {
		r = ReasonOther
	}
	return disconnectReasonNames[r]
}

// CloseCodeReason maps a WebSocket close code (RFC 6455's, the IANA-registered
// 1012-1013 and sockmon's 4000, as the README's close-code table lists them)
// to a DisconnectReason. 1005 and 1006 (no status, abnormal
// closure) map to ReasonConnectionError; codes with no meaning of their own map
// to ReasonOther.
func CloseCodeReason(code int) DisconnectReason {
	switch code {
	case 1000:
		return ReasonNormal
	case 1001:
		return ReasonGoingAway
	case 1002, 1003:
		return ReasonProtocolError
	case 1005, 1006:
		return ReasonConnectionError
	case 1007:
		return ReasonInvalidPayload
	case 1008:
		return ReasonPolicy
	case 1009:
		return ReasonTooBig
	case 1011:
		return ReasonInternalError
	case 1012:
		return ReasonRestart
	case 1013:
		return ReasonTryAgainLater
	case 4000:
		return ReasonAdmin
	}
	return ReasonOther
}

// Scope is what a rate limit applies to, the `scope` label of
// sockmon_rate_limited_total.
type Scope uint8

// Rate-limit scopes.
const (
	ScopeIP Scope = iota
	ScopeConnection
	ScopeUser
	numScopes
)

var scopeNames = [numScopes]string{"ip", "connection", "user"}

// String returns the label value of s ("connection" for an out-of-range s).
func (s Scope) String() string {
	if s >= numScopes {
		s = ScopeConnection
	}
	return scopeNames[s]
}
