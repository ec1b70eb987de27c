package protocol

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/sockmon/sockmon/netcore"
	"github.com/sockmon/sockmon/netcore/wstest"
)

// The room fan-out benchmark: one publish to a room of 10,000 members. The
// members live in a child process (this test binary re-run as a client, see
// TestMain) so that neither process needs more than 20,000 descriptors, and
// they dial from 127.0.0.2-127.0.0.9 so that ephemeral ports do not run out.

const fanoutEnv = "SOCKMON_FANOUT_CLIENT" // "addr members"

func TestMain(m *testing.M) {
	if spec := os.Getenv(fanoutEnv); spec != "" {
		os.Exit(fanoutClient(spec))
	}
	os.Exit(m.Run())
}

// fanoutClient holds the members: it joins them to room "bench", prints
// "ready", then for every "expect K" line on stdin prints "done" once every
// member has received K more messages.
func fanoutClient(spec string) int {
	addr, n, _ := strings.Cut(spec, " ")
	members, _ := strconv.Atoi(n)
	join := wstest.ClientFrame(true, 0, ws.OpText, []byte(`{"type":"join","room":"bench"}`), true)
	var received atomic.Int64
	var wg sync.WaitGroup
	for i := 0; i < members; i++ {
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, byte(2+i%8))}, Timeout: 10 * time.Second}
		c, err := d.Dial("tcp", addr)
		if err != nil {
			fmt.Println("dial:", err)
			return 1
		}
		_, _ = c.Write([]byte("GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"))
		br := bufio.NewReaderSize(c, 4096)
		if resp, err := http.ReadResponse(br, nil); err != nil || resp.StatusCode != 101 {
			fmt.Println("upgrade:", err, resp)
			return 1
		}
		_, _ = c.Write(join)
		if _, err := ws.ReadHeader(br); err != nil { // the ack
			fmt.Println("ack:", err)
			return 1
		}
		_, _ = br.Discard(len(`{"type":"ack"}`))
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				h, err := ws.ReadHeader(br)
				if err != nil {
					return
				}
				if _, err := br.Discard(int(h.Length)); err != nil {
					return
				}
				received.Add(1)
			}
		}()
	}
	fmt.Println("ready")
	sc := bufio.NewScanner(os.Stdin)
	var want int64
	for sc.Scan() {
		k, _ := strconv.Atoi(strings.TrimPrefix(sc.Text(), "expect "))
		want += int64(k) * int64(members)
		for received.Load() < want {
			time.Sleep(100 * time.Microsecond)
		}
		fmt.Println("done")
	}
	return 0
}

func BenchmarkRoomFanout(b *testing.B) {
	const members = 10000
	srv, addr := testServer(b, Config{ConnRate: -1}, func(e *netcore.Config) { e.MaxConns, e.WriteQueueBytes = members+10, 64<<20 })
	cmd := exec.Command(os.Args[0], "-test.run=^$", "-test.bench=^$")
	cmd.Env = append(os.Environ(), fanoutEnv+"="+addr+" "+strconv.Itoa(members))
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { stdin.Close(); _ = cmd.Process.Kill(); _ = cmd.Wait() })
	lines := bufio.NewScanner(stdout)
	expect := func(word string) {
		if !lines.Scan() || lines.Text() != word {
			b.Fatalf("fan-out client: %q, want %q", lines.Text(), word)
		}
	}
	expect("ready")
	wstest.WaitFor(b, "every member in the room", func() bool {
		rooms := srv.Rooms()
		return len(rooms) == 1 && rooms[0].Members == members
	})
	data := []byte(`{"symbol":"SOCK","price":101.25,"seq":12345}`)
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	_, _ = io.WriteString(stdin, "expect "+strconv.Itoa(b.N)+"\n")
	for i := 0; i < b.N; i++ {
		if n, err := srv.Publish("bench", data); err != nil || n != members {
			b.Fatalf("publish %d reached %d members: %v", i, n, err)
		}
	}
	written := time.Since(start)
	expect("done")
	b.StopTimer()
	// Two rates: frames handed to the kernel by the server, and frames read
	// by the members (the client process shares the machine's two cores).
	b.ReportMetric(float64(b.N)*members/written.Seconds(), "writes/s")
	b.ReportMetric(float64(b.N)*members/time.Since(start).Seconds(), "deliveries/s")
}
