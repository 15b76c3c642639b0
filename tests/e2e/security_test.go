package e2e

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/flightsink/flightsink/internal/kafkatest"
)

// saslBroker starts a private broker with a SASL_PLAINTEXT listener (user
// flightsink / flightsink-secret, PLAIN and SCRAM) and returns its plain
// and SASL addresses.
func saslBroker(t *testing.T) (plain, sasl string) {
	t.Helper()
	script := os.Getenv("FLIGHTSINK_KAFKA_SCRIPT")
	if script == "" {
		if os.Getenv("FLIGHTSINK_TEST_REQUIRE_TOOLS") == "1" {
			t.Fatal("FLIGHTSINK_KAFKA_SCRIPT is not set; make test sets it")
		}
		t.Skip("needs FLIGHTSINK_KAFKA_SCRIPT (scripts/kafka.sh); make test sets it")
	}
	name := "sasl-" + strings.ReplaceAll(t.Name(), "/", "_")
	cmd := exec.Command("bash", script, "up", name)
	cmd.Env = append(os.Environ(), "KAFKA_SASL=1")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("kafka.sh up %s: %v", name, err)
	}
	t.Cleanup(func() { _, _ = exec.Command("bash", script, "down", name).Output() })
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if v, ok := strings.CutPrefix(line, "KAFKA_SASL_BROKERS="); ok {
			sasl = v
		}
		if v, ok := strings.CutPrefix(line, "KAFKA_BROKERS="); ok {
			plain = v
		}
	}
	if sasl == "" || plain == "" {
		t.Fatalf("kafka.sh up printed no SASL address:\n%s", out)
	}
	return plain, sasl
}

// TestKafkaSASL: flightsink authenticates to the broker's SASL listener
// with SCRAM-SHA-512 and PLAIN, the password coming from the environment;
// a wrong password fails at start-up, naming the problem.
func TestKafkaSASL(t *testing.T) {
	plain, sasl := saslBroker(t)
	for _, mech := range []string{"SCRAM-SHA-512", "PLAIN"} {
		t.Run(mech, func(t *testing.T) {
			topic := kafkatest.TopicName(t)
			kafkatest.CreateTopic(t, []string{plain}, topic, 1, nil)
			cfg := filepath.Join(t.TempDir(), "config.yaml")
			body := "kafka:\n  sasl:\n    mechanism: " + mech + "\n    username: flightsink\n    password: {env: TEST_KAFKA_PASSWORD}\n"
			if err := os.WriteFile(cfg, []byte(body), 0o600); err != nil {
				t.Fatal(err)
			}
			srv := startServer(t, serverConfig{brokers: []string{sasl}, replica: "sasl", prefix: uniquePrefix(t),
				extra: []string{"--config", cfg}, env: []string{"TEST_KAFKA_PASSWORD=flightsink-secret"}})
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			done, err := upload(ctx, srv.addr, topic, "sasl-"+mech, 300, 100, 100, nil)
			if err != nil || done.CommittedRows != 300 {
				t.Fatalf("upload over SASL: %+v, %v", done, err)
			}
			checkExactlyOnce(t, []string{plain}, topic, 300)
		})
	}
	t.Run("wrong password", func(t *testing.T) {
		cfg := filepath.Join(t.TempDir(), "config.yaml")
		body := "kafka:\n  produce_timeout: 5s\n  sasl:\n    mechanism: SCRAM-SHA-256\n    username: flightsink\n    password: {value: wrong}\n"
		if err := os.WriteFile(cfg, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command(binary(t), "serve", "--config", cfg, "--brokers", sasl, "--listen", freeAddr(t)).CombinedOutput()
		if err == nil || !strings.Contains(string(out), "SASL") {
			t.Fatalf("serve with a wrong password: %v\n%s\nwant a start-up failure about SASL", err, out)
		}
		t.Logf("start-up failure: %s", lastLine(string(out)))
	})
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}
