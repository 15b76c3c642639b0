package faults

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	toxiproxy "github.com/Shopify/toxiproxy/v2/client"
)

// fault is what a nemesis acts on: the cluster, the flightsink process, the
// written topic and the writer's transactional id.
type fault struct {
	t     *testing.T
	c     *cluster
	srv   *server
	topic string
	parts int32
	txnID string
	rng   *rand.Rand
	hold  time.Duration // how long the fault lasts (a nemesis may lengthen it)
}

// nemesis is one kind of fault. apply starts it and returns what it hit and
// how to end it; the schedule waits hold between the two.
type nemesis struct {
	name  string
	apply func(f *fault) (target string, heal func())
}

// nemeses are the faults of the schedule; docs/faults.md describes each.
var nemeses = []nemesis{
	{"kill-leader", func(f *fault) (string, func()) {
		n, p := f.leaderOfWritten()
		f.c.node(f.t, "kill", n)
		return fmt.Sprintf("node %d, leader of %s[%d]", n, f.topic, p), func() { f.c.node(f.t, "start", n) }
	}},
	{"kill-coordinator", func(f *fault) (string, func()) {
		n := f.c.coordinator(f.t, f.txnID)
		f.c.node(f.t, "kill", n)
		return fmt.Sprintf("node %d, coordinator of %s", n, f.txnID), func() { f.c.node(f.t, "start", n) }
	}},
	{"pause", func(f *fault) (string, func()) {
		n, p := f.leaderOfWritten()
		f.hold = max(f.hold, produceTimeout+3*time.Second) // longer than a request may wait
		f.c.node(f.t, "pause", n)
		return fmt.Sprintf("node %d, leader of %s[%d]", n, f.topic, p), func() { f.c.node(f.t, "resume", n) }
	}},
	{"partition-client", func(f *fault) (string, func()) {
		n, p := f.leaderOfWritten()
		f.hold = max(f.hold, produceTimeout+3*time.Second) // long enough for streams to fail
		f.c.toxic(f.t, "timeout", toxiproxy.Attributes{"timeout": 0}, f.c.proxiesOf(n, true)...)
		return fmt.Sprintf("node %d, leader of %s[%d]", n, f.topic, p), func() {
			// flightsink's side only: the node stays leader (in sync) all along
			if now := f.c.leader(f.t, f.topic, p); now != n {
				f.t.Errorf("a client-only cut of node %d moved the leadership of %s[%d] to node %d", n, f.topic, p, now)
			}
			f.c.heal(f.t)
		}
	}},
	{"isolate", func(f *fault) (string, func()) {
		n, p := f.leaderOfWritten()
		f.c.toxic(f.t, "timeout", toxiproxy.Attributes{"timeout": 0}, f.c.proxiesOf(n, false)...)
		moved := f.waitLeaderMoves(n, p)
		return fmt.Sprintf("node %d, leader of %s[%d] (moved to node %d)", n, f.topic, p, moved), func() { f.c.heal(f.t) }
	}},
	{"slow", func(f *fault) (string, func()) {
		var all []string
		for n := 1; n <= f.c.nodes; n++ {
			all = append(all, f.c.proxiesOf(n, true)...)
		}
		f.c.toxic(f.t, "latency", toxiproxy.Attributes{"latency": 200, "jitter": 100}, all...)
		f.c.toxic(f.t, "bandwidth", toxiproxy.Attributes{"rate": 256}, all...) // KB/s
		return "every node's client link: 200±100 ms, 256 KB/s", func() { f.c.heal(f.t) }
	}},
	{"reset", func(f *fault) (string, func()) {
		n, p := f.leaderOfWritten()
		f.c.toxic(f.t, "reset_peer", toxiproxy.Attributes{"timeout": 500}, f.c.proxiesOf(n, true)...)
		return fmt.Sprintf("node %d, leader of %s[%d]: connections reset after 500 ms", n, f.topic, p), func() { f.c.heal(f.t) }
	}},
	{"kill-flightsink", func(f *fault) (string, func()) {
		f.srv.kill()
		return "the flightsink process", f.srv.start
	}},
	{"kill-leader+flightsink", func(f *fault) (string, func()) {
		n, p := f.leaderOfWritten()
		f.srv.kill()
		f.c.node(f.t, "kill", n)
		return fmt.Sprintf("node %d, leader of %s[%d], and flightsink", n, f.topic, p), func() {
			f.srv.start()
			f.c.node(f.t, "start", n)
		}
	}},
	{"kill-coordinator+flightsink", func(f *fault) (string, func()) {
		n := f.c.coordinator(f.t, f.txnID)
		f.c.node(f.t, "kill", n)
		f.srv.kill()
		return fmt.Sprintf("node %d, coordinator of %s, and flightsink", n, f.txnID), func() {
			f.c.node(f.t, "start", n)
			f.srv.start()
		}
	}},
	{"isolate+pause", func(f *fault) (string, func()) {
		// two brokers away at once: one cut off, one stalled; nothing may be acknowledged
		n, p := f.leaderOfWritten()
		m := n%f.c.nodes + 1
		f.c.toxic(f.t, "timeout", toxiproxy.Attributes{"timeout": 0}, f.c.proxiesOf(n, false)...)
		f.c.node(f.t, "pause", m)
		return fmt.Sprintf("node %d isolated (leader of %s[%d]), node %d paused", n, f.topic, p, m), func() {
			f.c.node(f.t, "resume", m)
			f.c.heal(f.t)
		}
	}},
}

// leaderOfWritten is the leader of a partition the writer writes (chosen
// at random) and that partition.
func (f *fault) leaderOfWritten() (node int, p int32) {
	p = f.rng.Int32N(f.parts)
	return f.c.leader(f.t, f.topic, p), p
}

// waitLeaderMoves waits (within hold, at least) until the leadership of
// topic[p] has left node n, the sign of a broker isolated from the
// controller, and returns the new leader. If it has not moved after two
// minutes, it logs the metadata (a fact about the cluster to look into in the
// brokers' logs, which the run then keeps) and returns n: the fault stays
// applied, and the checks of safety after the schedule are the same.
func (f *fault) waitLeaderMoves(n int, p int32) int {
	start := time.Now()
	for {
		if now := f.c.leader(f.t, f.topic, p); now != n {
			f.hold = max(0, f.hold-time.Since(start))
			return now
		}
		if time.Since(start) > 2*time.Minute {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			md, err := f.c.admin(f.t).ListTopics(ctx, f.topic, "__transaction_state")
			cancel()
			keepLogs.Store(true)
			f.t.Logf("NOTE: node %d isolated for 2 minutes is still leader of %s[%d]; metadata now: %+v (%v)", n, f.topic, p, md, err)
			return n
		}
		time.Sleep(250 * time.Millisecond)
	}
}
