package faults

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	toxiproxy "github.com/Shopify/toxiproxy/v2/client"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// cluster is a Kafka cluster of scripts/kafka.sh: its nodes (node.id 1..n)
// are started, stopped and signalled through the script, their network
// through toxiproxy.
type cluster struct {
	script  string
	name    string
	nodes   int
	brokers []string
	toxi    *toxiproxy.Client
}

// kafkaScript is scripts/kafka.sh: FLIGHTSINK_KAFKA_SCRIPT (make test sets
// it), else the one of this source tree.
func kafkaScript() string {
	if s := os.Getenv("FLIGHTSINK_KAFKA_SCRIPT"); s != "" {
		return s
	}
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", "scripts", "kafka.sh")
}

// startCluster runs `kafka.sh up NAME --brokers N` with this process as the
// owner (a watchdog removes the cluster once it has exited).
func startCluster(name string, nodes int) (*cluster, error) {
	c := &cluster{script: kafkaScript(), name: name, nodes: nodes}
	_ = exec.Command("bash", c.script, "down", name).Run() // a leftover of a killed run
	cmd := exec.Command("bash", c.script, "up", name, "--brokers", strconv.Itoa(nodes))
	cmd.Env = append(os.Environ(), fmt.Sprintf("KAFKA_OWNER_PID=%d", os.Getpid()))
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("kafka.sh up %s --brokers %d: %w", name, nodes, err)
	}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if v, ok := strings.CutPrefix(line, "KAFKA_BROKERS="); ok {
			c.brokers = strings.Split(v, ",")
		}
		if v, ok := strings.CutPrefix(line, "TOXIPROXY_URL="); ok {
			c.toxi = toxiproxy.NewClient(v)
		}
	}
	if len(c.brokers) != nodes || c.toxi == nil {
		c.down()
		return nil, fmt.Errorf("kafka.sh up printed %q: want TOXIPROXY_URL= and KAFKA_BROKERS= with %d brokers", out, nodes)
	}
	return c, nil
}

func (c *cluster) down() { _ = exec.Command("bash", c.script, "down", c.name).Run() }

// keepLogs copies the nodes' server.log files out of the run dir (which
// down deletes) to a temporary directory and says where.
func (c *cluster) keepLogs() {
	cache := os.Getenv("FLIGHTSINK_CACHE_DIR")
	if cache == "" {
		cache = filepath.Join(filepath.Dir(c.script), "..", ".cache")
	}
	dir, err := os.MkdirTemp("", "flightsink-faults-logs-")
	if err != nil {
		return
	}
	for n := 1; n <= c.nodes; n++ {
		src := filepath.Join(cache, "kafka", "run", c.name, fmt.Sprintf("node%d", n), "logs", "server.log")
		if b, err := os.ReadFile(src); err == nil {
			_ = os.WriteFile(filepath.Join(dir, fmt.Sprintf("node%d-server.log", n)), b, 0o644)
		}
	}
	fmt.Fprintf(os.Stderr, "faults: the cluster's broker logs are kept in %s\n", dir)
}

// node runs `kafka.sh CMD NAME NODE` (stop, start, kill, pause, resume).
func (c *cluster) node(t testing.TB, cmd string, n int) {
	t.Helper()
	out, err := exec.Command("bash", c.script, cmd, c.name, strconv.Itoa(n)).CombinedOutput()
	if err != nil {
		t.Fatalf("kafka.sh %s %s %d: %v\n%s", cmd, c.name, n, err, out)
	}
}

// admin is an admin client of the cluster whose requests give up quickly
// (a node may be cut off), closed at test end.
func (c *cluster) admin(t testing.TB) *kadm.Client {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.brokers...), kgo.DialTimeout(2*time.Second),
		kgo.RequestTimeoutOverhead(3*time.Second), kgo.RetryTimeout(5*time.Second), kgo.MetadataMinAge(200*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return kadm.NewClient(cl)
}

// createTopic creates topic with partitions, replication 3 and the
// broker's min.insync.replicas (2), and waits until each has a leader.
func (c *cluster) createTopic(t testing.TB, topic string, partitions int32) {
	t.Helper()
	adm := c.admin(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	resp, err := adm.CreateTopic(ctx, partitions, int16(c.nodes), nil, topic)
	if err == nil {
		err = resp.Err
	}
	if err != nil {
		t.Fatalf("creating topic %s: %v", topic, err)
	}
	c.waitHealthy(t, topic)
}

// leader is the node leading topic's partition p.
func (c *cluster) leader(t testing.TB, topic string, p int32) int {
	t.Helper()
	adm := c.admin(t)
	for attempt := 0; ; attempt++ {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		md, err := adm.ListTopics(ctx, topic)
		cancel()
		if err == nil && md[topic].Err == nil {
			if pd, ok := md[topic].Partitions[p]; ok && pd.Leader > 0 {
				return int(pd.Leader)
			}
		}
		if attempt == 50 {
			t.Fatalf("no leader of %s[%d]: %v", topic, p, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// coordinator is the node that is the transaction coordinator of txnID.
func (c *cluster) coordinator(t testing.TB, txnID string) int {
	t.Helper()
	adm := c.admin(t)
	for attempt := 0; ; attempt++ {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		resp := adm.FindTxnCoordinators(ctx, txnID)
		cancel()
		if r, ok := resp[txnID]; ok && r.Err == nil && r.NodeID > 0 {
			return int(r.NodeID)
		}
		if attempt == 50 {
			t.Fatalf("no transaction coordinator of %s: %v", txnID, resp)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// waitHealthy waits until every partition of topics has a leader and all
// nodes in its ISR: the state a fault starts from.
func (c *cluster) waitHealthy(t testing.TB, topics ...string) {
	t.Helper()
	adm := c.admin(t)
	deadline := time.Now().Add(3 * time.Minute)
	var why error
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		md, err := adm.ListTopics(ctx, topics...)
		cancel()
		why = err
		if err == nil {
			why = fullISR(md, topics, c.nodes)
		}
		if why == nil {
			return
		}
		time.Sleep(250 * time.Millisecond)
	}
	t.Fatalf("the cluster did not heal within 3 minutes: %v", why)
}

// fullISR is nil when every partition of topics has a leader and n replicas in sync.
func fullISR(md kadm.TopicDetails, topics []string, n int) error {
	for _, topic := range topics {
		td, ok := md[topic]
		if !ok || td.Err != nil || len(td.Partitions) == 0 {
			return fmt.Errorf("topic %s: %v", topic, td.Err)
		}
		for _, p := range td.Partitions {
			if p.Leader < 0 || len(p.ISR) < n {
				return fmt.Errorf("%s[%d]: leader %d, ISR %v", topic, p.Partition, p.Leader, p.ISR)
			}
		}
	}
	return nil
}

// proxiesOf names the proxies of node n: its client listener only
// (clientOnly), or every link into and out of it that the proxies carry.
func (c *cluster) proxiesOf(n int, clientOnly bool) []string {
	names := []string{fmt.Sprintf("node%d-client", n)}
	if clientOnly {
		return names
	}
	names = append(names, fmt.Sprintf("node%d-internal", n))
	for m := 1; m <= c.nodes; m++ {
		if m != n {
			names = append(names, fmt.Sprintf("node%d-to-node%d-ctrl", m, n), fmt.Sprintf("node%d-to-node%d-ctrl", n, m))
		}
	}
	return names
}

// toxic adds a toxic of type kind with attrs, both directions, to each
// named proxy.
func (c *cluster) toxic(t testing.TB, kind string, attrs toxiproxy.Attributes, proxies ...string) {
	t.Helper()
	for _, name := range proxies {
		p, err := c.toxi.Proxy(name)
		if err != nil {
			t.Fatalf("toxiproxy %s: %v", name, err)
		}
		for _, stream := range []string{"upstream", "downstream"} {
			if _, err := p.AddToxic(kind+"-"+stream, kind, stream, 1, attrs); err != nil {
				t.Fatalf("toxiproxy %s: adding %s %s: %v", name, stream, kind, err)
			}
		}
	}
}

// heal removes every toxic (and enables every proxy).
func (c *cluster) heal(t testing.TB) {
	t.Helper()
	if err := c.toxi.ResetState(); err != nil {
		t.Fatalf("toxiproxy reset: %v", err)
	}
}
