package cluster

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// Send runs a command on every other registered node and returns their
// replies, sorted by node id: each node's own, or "timeout" for one that
// did not answer within CommandTimeout. It returns an *UnavailableError,
// having sent nothing, when Redis cannot be reached.
func (n *Node) Send(ctx context.Context, kind string, data json.RawMessage) ([]Reply, error) {
	nodes, err := n.Nodes(ctx)
	if err != nil {
		return nil, err
	}
	want := map[string]bool{}
	for _, ni := range nodes {
		if !ni.Self {
			want[ni.ID] = true
		}
	}
	if len(want) == 0 {
		return []Reply{}, nil
	}
	c := Command{ID: n.o.ID + "/" + strconv.FormatUint(n.seq.Add(1), 10) + "/" + strconv.FormatInt(time.Now().UnixNano(), 36),
		From: n.o.ID, Kind: kind, Data: data}
	ch := make(chan Reply, len(want)+8)
	n.waitMu.Lock()
	n.waiters[c.ID] = ch
	n.waitMu.Unlock()
	defer func() {
		n.waitMu.Lock()
		delete(n.waiters, c.ID)
		n.waitMu.Unlock()
	}()
	b, _ := json.Marshal(c)
	if err := n.call(ctx, func(ctx context.Context) error { return n.rdb.Publish(ctx, chanCmd, b).Err() }); err != nil {
		return nil, err
	}
	got := map[string]Reply{}
	timer := time.NewTimer(n.o.CommandTimeout)
	defer timer.Stop()
wait:
	for len(want) > 0 {
		select {
		case r := <-ch:
			got[r.Node] = r
			delete(want, r.Node)
		case <-timer.C:
			break wait
		case <-ctx.Done():
			break wait
		case <-n.ctx.Done():
			break wait
		}
	}
	// Replies that arrived with the last one.
	for {
		select {
		case r := <-ch:
			got[r.Node] = r
			delete(want, r.Node)
			continue
		default:
		}
		break
	}
	out := make([]Reply, 0, len(got)+len(want))
	for _, r := range got {
		r.ID = ""
		out = append(out, r)
	}
	for id := range want {
		out = append(out, Reply{Node: id, Status: ReplyTimeout,
			Message: fmt.Sprintf("no reply within %s", n.o.CommandTimeout)})
	}
	slices.SortFunc(out, func(a, b Reply) int { return strings.Compare(a.Node, b.Node) })
	return out, nil
}

// receive dispatches the messages of the node's channels until Close.
func (n *Node) receive(ch <-chan *redis.Message) {
	for m := range ch {
		switch {
		case m.Channel == chanCmd:
			var c Command
			if json.Unmarshal([]byte(m.Payload), &c) != nil || c.From == n.o.ID || c.ID == "" {
				continue
			}
			n.run(c)
		case m.Channel == chanState:
			n.applyState([]byte(m.Payload))
		case strings.HasPrefix(m.Channel, chanReply):
			var r Reply
			if json.Unmarshal([]byte(m.Payload), &r) != nil {
				continue
			}
			n.waitMu.Lock()
			w := n.waiters[r.ID]
			n.waitMu.Unlock()
			if w != nil {
				select {
				case w <- r:
				default:
				}
			}
		}
	}
}

// run runs another node's command on a goroutine of its own (at most
// maxHandlers at once; past that, it answers busy at once) and publishes
// the reply.
func (n *Node) run(c Command) {
	h := n.handler.Load()
	select {
	case n.sem <- struct{}{}:
	default:
		n.reply(c, Reply{Node: n.o.ID, Status: "error", Code: "busy", Message: "too many cluster commands running on this node"})
		return
	}
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		defer func() { <-n.sem }()
		var r Reply
		if h == nil {
			r = Reply{Status: "error", Code: "unavailable", Message: "this node does not run cluster commands"}
		} else {
			ctx, cancel := context.WithTimeout(n.ctx, n.o.CommandTimeout)
			r = (*h)(ctx, c)
			cancel()
		}
		r.Node = n.o.ID
		n.reply(c, r)
	}()
}

func (n *Node) reply(c Command, r Reply) {
	r.ID = c.ID
	b, _ := json.Marshal(r)
	if err := n.call(n.ctx, func(ctx context.Context) error { return n.rdb.Publish(ctx, chanReply+c.From, b).Err() }); err != nil {
		n.log.Warn("cannot send a cluster command's reply", "to", c.From, "kind", c.Kind, "err", err)
	}
}
