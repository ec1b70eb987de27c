package control

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/sockmon/sockmon/control/logs"
)

// Audit redaction. What an audit record keeps of a request's data is
// decided by an allowlist: the fields its action's typed request declares
// (MaintenanceRequest, ExecuteRequest...), at any depth. A field the type
// does not declare is kept by name with its value redacted (a typo or an
// unknown field is refused with 422, and the record shows which). The one
// field of free content, a broadcast's message, keeps its shape with the
// values under keys that name a secret redacted (logs.SensitiveKey). In
// every string kept, a credential (a JWT, Bearer or Basic credentials, URL
// userinfo, password=, pwd=, session=, dsn=... in a query, the server's own
// secrets) redacts the whole string. Long strings and arrays are
// shortened, data over maxAuditInputBytes is not decoded at all, and a
// result over maxAuditDataBytes is replaced by its size.

// Redaction limits.
const (
	redacted           = "[REDACTED]"
	maxAuditString     = 512
	maxAuditArray      = 100
	maxAuditDataBytes  = 16 << 10
	maxAuditInputBytes = 64 << 10
)

// actionRequests are the types each action's data decodes into: the
// allowlist of the audit log. An action missing here keeps no value at all
// (TestEveryActionDeclaresItsRequest keeps the two maps together).
var actionRequests = map[string]reflect.Type{
	ActionExecuteCommand:        reflect.TypeFor[ExecuteRequest](),
	ActionConfigureAlert:        reflect.TypeFor[ConfigureAlertRequest](),
	ActionSetRateLimit:          reflect.TypeFor[RateLimitRequest](),
	ActionResetCircuitBreaker:   reflect.TypeFor[BreakerRequest](),
	ActionSetMaintenanceMode:    reflect.TypeFor[MaintenanceRequest](),
	ActionForceDisconnectUser:   reflect.TypeFor[DisconnectUserRequest](),
	ActionForceDisconnectSocket: reflect.TypeFor[DisconnectSocketRequest](),
	ActionGetConnections:        reflect.TypeFor[ConnectionsRequest](),
	ActionGetMetricsHistory:     reflect.TypeFor[HistoryRequest](),
	ActionGetCommandHistory:     reflect.TypeFor[CommandHistoryRequest](),
	ActionGetAlertConfigs:       reflect.TypeFor[struct{}](),
	ActionSetAgentState:         reflect.TypeFor[AgentStateRequest](),
	ActionHealthDetails:         reflect.TypeFor[DetailsRequest](),
	ActionGetAlerts:             reflect.TypeFor[struct{}](),
	ActionGetAlertHistory:       reflect.TypeFor[AlertHistoryRequest](),
	ActionAcknowledgeAlert:      reflect.TypeFor[AcknowledgeRequest](),
	ActionSilenceAlerts:         reflect.TypeFor[SilenceRequest](),
	ActionGetSilences:           reflect.TypeFor[struct{}](),
	ActionExpireSilence:         reflect.TypeFor[ExpireSilenceRequest](),
	ActionTestAlertChannel:      reflect.TypeFor[TestChannelRequest](),
	ActionAlertRemediation:      reflect.TypeFor[remediationRecord](),
	ActionGetCluster:            reflect.TypeFor[struct{}](),
}

// freeJSON marks a json.RawMessage field of free content in rawFields.
type freeJSON struct{}

// rawField names a json.RawMessage field of a request type.
type rawField struct {
	in   reflect.Type
	name string // its JSON name
}

// rawFields says what the json.RawMessage fields of the request types
// hold when it is not a scalar: another request type, or free content
// (freeJSON). Any other RawMessage field holds a scalar (a time, a
// duration, a socket id): kept when it is one.
var rawFields = map[rawField]reflect.Type{
	{reflect.TypeFor[ExecuteRequest](), "message"}:     reflect.TypeFor[freeJSON](),
	{reflect.TypeFor[DetailsRequest](), "connections"}: reflect.TypeFor[ConnectionsRequest](),
	{reflect.TypeFor[DetailsRequest](), "history"}:     reflect.TypeFor[HistoryRequest](),
	{reflect.TypeFor[DetailsRequest](), "commands"}:    reflect.TypeFor[CommandHistoryRequest](),
}

// shapeKind is what the audit log keeps of a JSON value.
type shapeKind uint8

const (
	shapeScalar shapeKind = iota // a string, number, boolean or null
	shapeObject                  // the fields listed, each by its shape
	shapeArray                   // items of one shape
	shapeFree                    // any JSON, secret-named keys redacted
)

// auditShape is the allowlist of one JSON value. A nil *auditShape is a
// value nothing declares: redacted.
type auditShape struct {
	kind   shapeKind
	fields map[string]*auditShape
	items  *auditShape
}

var rawMessageType = reflect.TypeFor[json.RawMessage]()

// shapeOf derives the allowlist of a Go type as encoding/json decodes it.
func shapeOf(t reflect.Type) *auditShape {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch {
	case t == reflect.TypeFor[freeJSON]():
		return &auditShape{kind: shapeFree}
	case t == rawMessageType:
		return &auditShape{kind: shapeScalar}
	}
	switch t.Kind() {
	case reflect.Struct:
		sh := &auditShape{kind: shapeObject, fields: map[string]*auditShape{}}
		for i := range t.NumField() {
			f := t.Field(i)
			name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
			if f.Anonymous && name == "" && (f.Type.Kind() == reflect.Struct || f.Type.Kind() == reflect.Pointer && f.Type.Elem().Kind() == reflect.Struct) {
				// An embedded struct's fields are the outer object's, as
				// encoding/json decodes them.
				for k, v := range shapeOf(f.Type).fields {
					sh.fields[k] = v
				}
				continue
			}
			if !f.IsExported() || name == "-" {
				continue
			}
			if name == "" {
				name = f.Name
			}
			if raw, ok := rawFields[rawField{t, name}]; ok {
				sh.fields[name] = shapeOf(raw)
			} else {
				sh.fields[name] = shapeOf(f.Type)
			}
		}
		return sh
	case reflect.Slice, reflect.Array:
		return &auditShape{kind: shapeArray, items: shapeOf(t.Elem())}
	case reflect.Map, reflect.Interface:
		return &auditShape{kind: shapeFree}
	}
	return &auditShape{kind: shapeScalar}
}

// actionShapes are the allowlists of the actions, derived once.
var actionShapes = sync.OnceValue(func() map[string]*auditShape {
	m := make(map[string]*auditShape, len(actionRequests))
	for name, t := range actionRequests {
		m[name] = shapeOf(t)
	}
	return m
})

// shapeOfAction is the allowlist of an action's data: for an unknown
// action, an object whose every field is redacted.
func shapeOfAction(action string) *auditShape {
	if sh := actionShapes()[action]; sh != nil {
		return sh
	}
	return &auditShape{kind: shapeObject}
}

// auditRedactor redacts audit data; secrets are the server's own (the
// admin and client secrets), redacted wherever they appear. Its zero value
// knows no secret. Safe for concurrent use.
type auditRedactor struct {
	secrets []string
}

func newAuditRedactor(secrets ...[]byte) auditRedactor {
	var r auditRedactor
	for _, s := range secrets {
		if len(s) >= 8 {
			r.secrets = append(r.secrets, string(s))
		}
	}
	return r
}

// data returns what the audit log keeps of action's data.
func (r auditRedactor) data(action string, data []byte) json.RawMessage {
	return r.apply(shapeOfAction(action), data)
}

// envelope returns what the audit log keeps of a whole admin POST body,
// {"action":..., "data":...}, that did not decode.
func (r auditRedactor) envelope(action string, body []byte) json.RawMessage {
	return r.apply(&auditShape{kind: shapeObject, fields: map[string]*auditShape{
		"action": {kind: shapeScalar}, "data": shapeOfAction(action)}}, body)
}

// free returns data kept as free content.
func (r auditRedactor) free(data []byte) json.RawMessage {
	return r.apply(&auditShape{kind: shapeFree}, data)
}

// apply decodes data and keeps what sh allows. Data that is not JSON is
// reduced to its size: its content cannot be redacted reliably.
func (r auditRedactor) apply(sh *auditShape, data []byte) json.RawMessage {
	data = bytes.TrimSpace(data)
	if len(data) == 0 || string(data) == "null" {
		return nil
	}
	if len(data) > maxAuditInputBytes {
		return sizeOnly("omittedBytes", len(data))
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil || dec.More() {
		return sizeOnly("invalidJsonBytes", len(data))
	}
	out, err := json.Marshal(r.keep(sh, v))
	if err != nil {
		return sizeOnly("unencodableBytes", len(data))
	}
	if len(out) > maxAuditDataBytes {
		return sizeOnly("omittedBytes", len(data))
	}
	return out
}

func sizeOnly(key string, n int) json.RawMessage {
	return json.RawMessage(`{"` + key + `":` + strconv.Itoa(n) + `}`)
}

// keep returns what sh allows of v, a decoded JSON value (changed in
// place).
func (r auditRedactor) keep(sh *auditShape, v any) any {
	if sh == nil {
		return redacted
	}
	if sh.kind == shapeFree {
		return r.freeValue(v)
	}
	switch x := v.(type) {
	case map[string]any:
		if sh.kind != shapeObject {
			return redacted
		}
		for k, e := range x {
			x[k] = r.keep(sh.fields[k], e)
		}
		return x
	case []any:
		if sh.kind != shapeArray {
			return redacted
		}
		x = shorten(x)
		for i, e := range x {
			x[i] = r.keep(sh.items, e)
		}
		return x
	case string:
		return r.string(x)
	}
	return v
}

// freeValue keeps free content: values under keys that name a secret
// redacted, strings scrubbed, long arrays shortened.
func (r auditRedactor) freeValue(v any) any {
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			if logs.SensitiveKey(k) {
				x[k] = redacted
			} else {
				x[k] = r.freeValue(e)
			}
		}
		return x
	case []any:
		x = shorten(x)
		for i, e := range x {
			x[i] = r.freeValue(e)
		}
		return x
	case string:
		return r.string(x)
	}
	return v
}

func shorten(x []any) []any {
	if len(x) > maxAuditArray {
		x = append(x[:maxAuditArray:maxAuditArray], "["+strconv.Itoa(len(x)-maxAuditArray)+" more]")
	}
	return x
}

// string redacts s whole if it holds a credential, else shortens it.
func (r auditRedactor) string(s string) string {
	for _, sec := range r.secrets {
		if strings.Contains(s, sec) {
			return redacted
		}
	}
	if logs.RedactString(s) != s {
		return redacted
	}
	if len(s) > maxAuditString {
		cut := maxAuditString
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		return s[:cut] + "...[" + strconv.Itoa(len(s)-cut) + " more bytes]"
	}
	return s
}
