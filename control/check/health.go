package check

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"
)

// HealthPath is the control side's health endpoint: GET for the public
// body, POST with an admin token for the detailed view.
const HealthPath = "/api/health/socket"

// maxBodyBytes bounds what the check reads of a health answer.
const maxBodyBytes = 4 << 20

// HealthBody is the public health body (the README's control side), times in
// milliseconds as the server sends them. The detailed view starts with the
// same fields.
type HealthBody struct {
	Status string `json:"status"`
	// ResponseTime is how long the server took to build the answer, in
	// milliseconds.
	ResponseTime float64 `json:"responseTime"`
	// Uptime is the server's time since start, in milliseconds.
	Uptime    int64     `json:"uptime"`
	Timestamp time.Time `json:"timestamp"`
	// Reasons names the checks that made the status other than healthy.
	Reasons []string      `json:"reasons,omitempty"`
	Details HealthDetails `json:"details"`
}

// HealthDetails is the "details" object of the public health body.
type HealthDetails struct {
	Connections     HealthConnections        `json:"connections"`
	Performance     HealthPerformance        `json:"performance"`
	CircuitBreakers map[string]BreakerHealth `json:"circuitBreakers"`
}

// HealthConnections counts the open WebSocket connections.
type HealthConnections struct {
	Total         int64 `json:"total"`
	Authenticated int64 `json:"authenticated"`
	Anonymous     int64 `json:"anonymous"`
}

// HealthPerformance is message handling over the last minute: latency in
// milliseconds, ErrorRate as a ratio (0-1) of messages received.
type HealthPerformance struct {
	AvgResponseTime   float64 `json:"avgResponseTime"`
	P95ResponseTime   float64 `json:"p95ResponseTime"`
	P99ResponseTime   float64 `json:"p99ResponseTime"`
	ErrorRate         float64 `json:"errorRate"`
	MessagesPerMinute float64 `json:"messagesPerMinute"`
}

// BreakerHealth is one circuit breaker of the health body.
type BreakerHealth struct {
	Status   string `json:"status"`
	Failures int    `json:"failures"`
}

// HealthDetail is what the check keeps of the detailed (admin) view beyond
// the public body. It leaves out the view's connection list and command
// history, which name users, addresses and operators.
type HealthDetail struct {
	Connections ConnectionSummary `json:"connections"`
	Process     ProcessStats      `json:"process"`
	Maintenance Maintenance       `json:"maintenance"`
	Ready       bool              `json:"ready"`
	Draining    bool              `json:"draining"`
	// HeartbeatAgeMs is the age of the engine's last event-loop heartbeat;
	// nil before the engine serves.
	HeartbeatAgeMs *float64 `json:"heartbeatAgeMs,omitempty"`
}

// ConnectionSummary counts connections now and since the server started.
type ConnectionSummary struct {
	Total          int64  `json:"total"`
	Authenticated  int64  `json:"authenticated"`
	Anonymous      int64  `json:"anonymous"`
	Accepted       uint64 `json:"accepted"`
	Rejected       uint64 `json:"rejected"`
	Closed         uint64 `json:"closed"`
	SlowConsumers  uint64 `json:"slowConsumers"`
	ProtocolErrors uint64 `json:"protocolErrors"`
	Rooms          int    `json:"rooms"`
}

// ProcessStats is the server process as the detailed view reports it.
// Available is false where the server cannot read /proc.
type ProcessStats struct {
	Available      bool    `json:"available"`
	Goroutines     int     `json:"goroutines"`
	HeapInuseBytes uint64  `json:"heapInuseBytes"`
	RSSBytes       uint64  `json:"rssBytes"`
	Threads        int     `json:"threads"`
	CPUFraction    float64 `json:"cpuFraction"`
	NumCPU         int     `json:"numCpu"`
}

// Maintenance is the server's maintenance mode.
type Maintenance struct {
	Enabled bool      `json:"enabled"`
	Reason  string    `json:"reason,omitempty"`
	Drain   bool      `json:"drain"`
	Since   time.Time `json:"since,omitzero"`
}

// detailedWire is the part of the detailed view's JSON the check decodes.
type detailedWire struct {
	HealthBody
	Connections struct {
		Summary ConnectionSummary `json:"summary"`
	} `json:"connections"`
	Process     ProcessStats `json:"process"`
	Maintenance Maintenance  `json:"maintenance"`
	Admin       struct {
		Ready          bool     `json:"ready"`
		Draining       bool     `json:"draining"`
		HeartbeatAgeMs *float64 `json:"heartbeatAgeMs"`
	} `json:"admin"`
}

// AdminError is a refusal of the detailed view: the admin token was
// refused (401, 403), the check's address is blocked after failed
// authentications (429), or the node has no admin API (503
// admin_disabled). The check is misconfigured rather than the node broken,
// so the state is UNKNOWN.
type AdminError struct {
	HTTPStatus int
	Code       string
	Message    string
}

func (e *AdminError) Error() string {
	return fmt.Sprintf("admin token refused: HTTP %d %s: %s", e.HTTPStatus, e.Code, e.Message)
}

// StatusError is an answer that is not a sockmon health body: an
// unexpected HTTP status, or a body that does not decode.
type StatusError struct {
	HTTPStatus int
	Problem    string
}

func (e *StatusError) Error() string {
	return fmt.Sprintf("unexpected answer: HTTP %d: %s", e.HTTPStatus, e.Problem)
}

// Health is the outcome of the health request.
type Health struct {
	URL string
	// Method is GET for the public body, POST for the detailed view.
	Method string
	// HTTPStatus is the answer's status code; 0 when none came.
	HTTPStatus int
	// ResponseTime is the time from sending the request to reading the end
	// of the answer, as the check saw it; 0 when no answer came.
	ResponseTime time.Duration
	// TimedOut is set when Config.Timeout expired before the answer.
	TimedOut bool
	// Err is why no health body was read: a transport error, an
	// *AdminError or a *StatusError. Nil when Body is set.
	Err error
	// Body is the decoded health body; nil when Err is set.
	Body *HealthBody
	// Detail is the detailed view's extra; nil for the public body.
	Detail *HealthDetail
}

// fetchHealth reads the health endpoint at url: GET, or POST with token
// when token is set. It returns when the answer is read or ctx ends.
func fetchHealth(ctx context.Context, client *http.Client, url, token string) Health {
	h := Health{URL: url, Method: http.MethodGet}
	var body io.Reader
	if token != "" {
		h.Method = http.MethodPost
		// The detailed view pages its connection list and command history;
		// one of each is the smallest page, and history from now on is
		// (nearly) empty: the check needs none of them.
		body = bytes.NewReader([]byte(`{"connections":{"limit":1},"commands":{"limit":1},"history":{"from":` +
			strconv.FormatInt(time.Now().UnixMilli(), 10) + `}}`))
	}
	req, err := http.NewRequestWithContext(ctx, h.Method, url, body)
	if err != nil {
		h.Err = err
		return h
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "sockmon-check")
	if token != "" {
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+token)
	}
	start := time.Now()
	resp, err := client.Do(req)
	if err != nil {
		h.Err, h.TimedOut = err, timedOut(ctx, err)
		return h
	}
	defer resp.Body.Close()
	h.HTTPStatus = resp.StatusCode
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxBodyBytes))
	if err != nil {
		h.Err, h.TimedOut = err, timedOut(ctx, err)
		return h
	}
	h.ResponseTime = time.Since(start)
	if token != "" {
		h.Body, h.Detail, h.Err = decodeDetailed(resp.StatusCode, raw)
	} else {
		h.Body, h.Err = decodePublic(resp.StatusCode, raw)
	}
	return h
}

// decodePublic reads the public body, which comes with 200 (healthy,
// degraded) or 503 (unhealthy, maintenance, draining).
func decodePublic(status int, raw []byte) (*HealthBody, error) {
	if status != http.StatusOK && status != http.StatusServiceUnavailable {
		return nil, &StatusError{HTTPStatus: status, Problem: "want 200 or 503 with a health body"}
	}
	var b HealthBody
	if err := json.Unmarshal(raw, &b); err != nil || b.Status == "" {
		return nil, &StatusError{HTTPStatus: status, Problem: "the body is not a sockmon health body"}
	}
	return &b, nil
}

// decodeDetailed reads the detailed view, in the seed's shape: the view at
// the top level with "success": true, or {"success":false,"error":{...}}.
func decodeDetailed(status int, raw []byte) (*HealthBody, *HealthDetail, error) {
	var reply struct {
		Success bool `json:"success"`
		Error   *struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	var view detailedWire
	var data *detailedWire
	if err := json.Unmarshal(raw, &reply); err != nil {
		return nil, nil, &StatusError{HTTPStatus: status, Problem: "the body is not a sockmon admin reply"}
	}
	if reply.Success {
		if err := json.Unmarshal(raw, &view); err != nil {
			return nil, nil, &StatusError{HTTPStatus: status, Problem: "the body is not a sockmon detailed health view"}
		}
		data = &view
	}
	if status != http.StatusOK || !reply.Success || data == nil {
		e := &AdminError{HTTPStatus: status}
		if reply.Error != nil {
			e.Code, e.Message = reply.Error.Code, reply.Error.Message
		}
		switch {
		case status == http.StatusUnauthorized || status == http.StatusForbidden || status == http.StatusTooManyRequests:
			return nil, nil, e
		case status == http.StatusServiceUnavailable && e.Code == "admin_disabled":
			return nil, nil, e
		}
		return nil, nil, &StatusError{HTTPStatus: status, Problem: fmt.Sprintf("admin reply %s: %s", e.Code, e.Message)}
	}
	d := data
	if d.Status == "" {
		return nil, nil, &StatusError{HTTPStatus: status, Problem: "the admin reply holds no health status"}
	}
	body := d.HealthBody
	return &body, &HealthDetail{
		Connections:    d.Connections.Summary,
		Process:        d.Process,
		Maintenance:    d.Maintenance,
		Ready:          d.Admin.Ready,
		Draining:       d.Admin.Draining,
		HeartbeatAgeMs: d.Admin.HeartbeatAgeMs,
	}, nil
}

// timedOut tells whether err is the check's deadline (ctx) expiring rather
// than a failure of the peer.
func timedOut(ctx context.Context, err error) bool {
	if ctx.Err() != nil || errors.Is(err, context.DeadlineExceeded) {
		return true
	}
	var ne interface{ Timeout() bool }
	return errors.As(err, &ne) && ne.Timeout()
}
