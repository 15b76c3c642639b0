// Package faults tests flightsink against the faults of a real three-node
// Kafka cluster (scripts/kafka.sh up NAME --brokers 3, every listener behind
// a toxiproxy): partition leaders and transaction coordinators killed with
// SIGKILL, brokers paused with SIGSTOP, one broker cut off from flightsink
// only or isolated from everything, slow and resetting links, and the
// flightsink process killed among them. A named writer streams a
// deterministic sequence with pipelined checkpoints and resumes on every
// retryable failure; a read_committed consumer then checks every row exactly
// once, per-key order, every acknowledged checkpoint, and that no
// transaction stays open. Recovery times are measured and logged, never
// asserted. docs/faults.md says what each fault does and what was found.
//
// The package starts its own cluster in TestMain (the test binary is its
// owner: a killed run leaves none behind) and removes it at the end.
// Knobs: FLIGHTSINK_TEST_FAULTS_DURATION (a long random schedule of that length;
// default a short one, every fault once), FLIGHTSINK_TEST_FAULTS_SEED (the
// schedule's seed; default the clock, logged), FLIGHTSINK_TEST_FAULTS_REPORT (a
// file the measured figures are appended to, as markdown).
package faults

import (
	"fmt"
	"os"
	"sync/atomic"
	"testing"
)

// theCluster is the package's cluster, started by TestMain.
var theCluster *cluster

// keepLogs asks TestMain to keep the brokers' logs of a passing run too
// (something worth a look happened).
var keepLogs atomic.Bool

func TestMain(m *testing.M) { os.Exit(run(m)) }

func run(m *testing.M) int {
	c, err := startCluster(fmt.Sprintf("faults-%d", os.Getpid()), 3)
	if err != nil {
		fmt.Fprintf(os.Stderr, "faults: starting the three-node cluster: %v\n", err)
		return 1
	}
	theCluster = c
	code := m.Run()
	if code != 0 || keepLogs.Load() {
		c.keepLogs()
	}
	c.down()
	return code
}
