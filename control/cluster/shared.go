package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// stateMsg is an announcement on sockmon:cluster:state: a ban or a
// per-user rate limit.
type stateMsg struct {
	From string `json:"from"`
	Type string `json:"type"` // "ban" or "ratelimit"
	// A ban: Key banned for TTLMs from the announcement, at Level.
	Key   string `json:"key,omitempty"`
	TTLMs int64  `json:"ttlMs,omitempty"`
	Level int    `json:"level,omitempty"`
	// A rate limit: Limit messages per WindowMs for UserID; 0 removes it.
	UserID   string `json:"userId,omitempty"`
	Limit    int    `json:"limit,omitempty"`
	WindowMs int64  `json:"windowMs,omitempty"`
}

type banMsg struct {
	key   string
	d     time.Duration
	level int
}

// ShareBan queues a ban of this node for the others (the protocol's
// BanShare). It never blocks: with the queue full (Redis slow for a long
// flood of bans) the ban stays local and a warning is logged.
func (n *Node) ShareBan(key string, d time.Duration, level int) {
	select {
	case n.bans <- banMsg{key, d, level}:
	default:
		n.log.Warn("ban not shared with the cluster: the queue to Redis is full", "ban", key)
	}
}

// writeBans writes the queued bans to Redis and announces them.
func (n *Node) writeBans() {
	for {
		select {
		case <-n.ctx.Done():
			return
		case b := <-n.bans:
			msg, _ := json.Marshal(stateMsg{From: n.o.ID, Type: "ban", Key: b.key, TTLMs: b.d.Milliseconds(), Level: b.level})
			err := n.call(n.ctx, func(ctx context.Context) error {
				p := n.rdb.Pipeline()
				p.Set(ctx, keyBanPrefix+b.key, b.level, b.d)
				p.ZAdd(ctx, keyBans, redis.Z{Score: float64(time.Now().Add(b.d).UnixMilli()), Member: b.key})
				p.Publish(ctx, chanState, msg)
				_, err := p.Exec(ctx)
				return err
			})
			if err != nil && n.ctx.Err() == nil {
				n.log.Warn("ban not shared with the cluster", "ban", b.key, "err", err)
			}
		}
	}
}

// ShareRateLimit stores a per-user rate limit in Redis and announces it;
// limit 0 removes it.
func (n *Node) ShareRateLimit(ctx context.Context, userID string, limit int, window time.Duration) error {
	msg, _ := json.Marshal(stateMsg{From: n.o.ID, Type: "ratelimit", UserID: userID, Limit: limit, WindowMs: window.Milliseconds()})
	return n.call(ctx, func(ctx context.Context) error {
		p := n.rdb.TxPipeline()
		if limit > 0 {
			v, _ := json.Marshal(stateMsg{Limit: limit, WindowMs: window.Milliseconds()})
			p.HSet(ctx, keyLimits, userID, v)
		} else {
			p.HDel(ctx, keyLimits, userID)
		}
		p.Publish(ctx, chanState, msg)
		_, err := p.Exec(ctx)
		return err
	})
}

func (n *Node) applyState(b []byte) {
	var m stateMsg
	if json.Unmarshal(b, &m) != nil || m.From == n.o.ID {
		return
	}
	switch m.Type {
	case "ban":
		if f := n.onBan.Load(); f != nil && m.Key != "" && m.TTLMs > 0 {
			(*f)(m.Key, time.Duration(m.TTLMs)*time.Millisecond, m.Level)
		}
	case "ratelimit":
		if f := n.onRateLimit.Load(); f != nil && m.UserID != "" {
			(*f)(m.UserID, m.Limit, time.Duration(m.WindowMs)*time.Millisecond)
		}
	}
}

// loadShared applies the bans in force and the per-user rate limits
// stored in Redis (at registration: start-up, and recovery after Redis
// failed, when announcements may have been missed).
func (n *Node) loadShared() {
	type ban struct {
		key   string
		d     time.Duration
		level int
	}
	var bans []ban
	limits := map[string]string{}
	err := n.call(n.ctx, func(ctx context.Context) error {
		now := time.Now().UnixMilli()
		// Index entries past their ban are dropped first.
		if err := n.rdb.ZRemRangeByScore(ctx, keyBans, "-inf", strconv.FormatInt(now, 10)).Err(); err != nil {
			return err
		}
		keys, err := n.rdb.ZRange(ctx, keyBans, 0, -1).Result()
		if err != nil {
			return err
		}
		p := n.rdb.Pipeline()
		type pair struct {
			ttl *redis.DurationCmd
			lvl *redis.StringCmd
		}
		cmds := make([]pair, len(keys))
		for i, k := range keys {
			cmds[i] = pair{p.PTTL(ctx, keyBanPrefix+k), p.Get(ctx, keyBanPrefix+k)}
		}
		if len(keys) > 0 {
			if _, err := p.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
				return err
			}
		}
		for i, c := range cmds {
			d, err := c.ttl.Result()
			if err != nil || d <= 0 {
				continue
			}
			lvl, _ := c.lvl.Int()
			bans = append(bans, ban{keys[i], d, lvl})
		}
		limits, err = n.rdb.HGetAll(ctx, keyLimits).Result()
		return err
	})
	if err != nil {
		n.log.Warn("cannot load the cluster's bans and rate limits", "err", err)
		return
	}
	if f := n.onBan.Load(); f != nil {
		for _, b := range bans {
			(*f)(b.key, b.d, b.level)
		}
	}
	if f := n.onRateLimit.Load(); f != nil {
		for user, v := range limits {
			var m stateMsg
			if json.Unmarshal([]byte(v), &m) == nil && m.Limit > 0 {
				(*f)(user, m.Limit, time.Duration(m.WindowMs)*time.Millisecond)
			}
		}
	}
	if len(bans)+len(limits) > 0 {
		n.log.Info("cluster bans and rate limits loaded", "bans", len(bans), "rateLimits", len(limits))
	}
}
