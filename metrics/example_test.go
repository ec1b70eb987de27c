package metrics_test

import (
	"bytes"
	"fmt"
	"time"

	"github.com/sockmon/sockmon/metrics"
)

// Example shows the calls a WebSocket engine makes: one Metrics per server,
// one Shard per connection, two clock readings per message.
func Example() {
	m, err := metrics.New(metrics.Options{Version: "1.0.0"})
	if err != nil {
		panic(err)
	}
	m.Start()
	defer m.Close()

	// At connect time.
	const connID = 42
	sh := m.Shard(connID)
	m.ConnectionOpened(metrics.Authenticated)

	// Per message.
	start := sh.Nanotime()
	// ... handle an echo of 64 bytes ...
	sh.ObserveMessage(metrics.KindEcho, time.Duration(sh.Nanotime()-start))
	sh.MessageReceived(64)
	sh.MessagesSent(1, 64)

	// At disconnect time.
	m.ConnectionClosed(metrics.Authenticated, metrics.InitiatorClient, metrics.CloseCodeReason(1000))

	// Control side.
	s := m.Snapshot()
	fmt.Println(s.Totals.MessagesReceived, s.Windows[metrics.Window1m].Latency.Count)
	var page bytes.Buffer
	m.WritePrometheus(&page)
	fmt.Println(bytes.Contains(page.Bytes(), []byte(`sockmon_connections_accepted_total{auth="authenticated"} 1`)))
	// Output:
	// 1 1
	// true
}
