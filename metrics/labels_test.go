package metrics

import "testing"

func TestLabelNames(t *testing.T) {
	tests := []struct {
		name string
		got  string
		want string
	}{
		{"kind echo", KindEcho.String(), "echo"},
		{"kind out of range", Kind(200).String(), "invalid"},
		{"error code", ErrRateLimited.String(), "rate_limited"},
		{"error code out of range", ErrorCode(99).String(), "internal"},
		{"auth", Authenticated.String(), "authenticated"},
		{"auth out of range", Auth(7).String(), "anonymous"},
		{"reject", RejectOrigin.String(), "origin"},
		{"reject out of range", RejectReason(77).String(), "handshake"},
		{"initiator", InitiatorClient.String(), "client"},
		{"initiator out of range", Initiator(5).String(), "server"},
		{"reason", ReasonSlowConsumer.String(), "slow_consumer"},
		{"reason out of range", DisconnectReason(99).String(), "other"},
		{"scope", ScopeUser.String(), "user"},
		{"scope out of range", Scope(9).String(), "connection"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.got != tt.want {
				t.Errorf("got %q, want %q", tt.got, tt.want)
			}
		})
	}
}

func TestLabelValuesAreSnakeCaseAndUnique(t *testing.T) {
	sets := map[string][]string{
		"kind": kindNames[:], "code": errorCodeNames[:], "auth": authNames[:], "reject": rejectReasonNames[:],
		"initiator": initiatorNames[:], "reason": disconnectReasonNames[:], "scope": scopeNames[:],
	}
	for name, vals := range sets {
		seen := map[string]bool{}
		for _, v := range vals {
			if v == "" || seen[v] {
				t.Errorf("%s: empty or duplicate value %q", name, v)
			}
			seen[v] = true
			for _, c := range v {
				if (c < 'a' || c > 'z') && c != '_' {
					t.Errorf("%s: value %q is not snake_case", name, v)
				}
			}
		}
	}
}

func TestParseKind(t *testing.T) {
	tests := []struct {
		typ    string
		want   Kind
		wantOK bool
	}{
		{"echo", KindEcho, true},
		{"ping", KindPing, true},
		{"join", KindJoin, true},
		{"leave", KindLeave, true},
		{"publish", KindPublish, true},
		{"rpc", KindRPC, true},
		{"pong", KindInvalid, false},
		{"", KindInvalid, false},
	}
	for _, tt := range tests {
		got, ok := ParseKind(tt.typ)
		if got != tt.want || ok != tt.wantOK {
			t.Errorf("ParseKind(%q) = %v, %v; want %v, %v", tt.typ, got, ok, tt.want, tt.wantOK)
		}
	}
	if n := testing.AllocsPerRun(100, func() { ParseKind("publish") }); n != 0 {
		t.Errorf("ParseKind allocates %v times", n)
	}
}

func TestCloseCodeReason(t *testing.T) {
	tests := []struct {
		code int
		want DisconnectReason
	}{
		{1000, ReasonNormal}, {1001, ReasonGoingAway}, {1002, ReasonProtocolError}, {1003, ReasonProtocolError},
		{1005, ReasonConnectionError}, {1006, ReasonConnectionError}, {1007, ReasonInvalidPayload},
		{1008, ReasonPolicy}, {1009, ReasonTooBig}, {1011, ReasonInternalError}, {1012, ReasonRestart},
		{1013, ReasonTryAgainLater}, {4000, ReasonAdmin}, {4999, ReasonOther}, {0, ReasonOther},
	}
	for _, tt := range tests {
		if got := CloseCodeReason(tt.code); got != tt.want {
			t.Errorf("CloseCodeReason(%d) = %v, want %v", tt.code, got, tt.want)
		}
	}
}
