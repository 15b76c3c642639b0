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

// secureBroker starts a private broker with an extra listener (KAFKA_SASL=1
// or KAFKA_TLS=1) and returns what kafka.sh up printed, by key.
func secureBroker(t *testing.T, kind string) map[string]string {
	t.Helper()
	script := os.Getenv("FLIGHTSINK_KAFKA_SCRIPT")
	if script == "" {
		if os.Getenv("FLIGHTSINK_TEST_REQUIRE_TOOLS") == "1" {
			t.Fatal("FLIGHTSINK_KAFKA_SCRIPT is not set; make test sets it")
		}
		t.Skip("needs FLIGHTSINK_KAFKA_SCRIPT (scripts/kafka.sh); make test sets it")
	}
	name := strings.ToLower(kind) + "-" + strings.ReplaceAll(t.Name(), "/", "_")
	cmd := exec.Command("bash", script, "up", name)
	cmd.Env = append(os.Environ(), "KAFKA_"+kind+"=1")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("kafka.sh up %s: %v", name, err)
	}
	t.Cleanup(func() { _, _ = exec.Command("bash", script, "down", name).Output() })
	vals := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if k, v, ok := strings.Cut(line, "="); ok && strings.HasPrefix(k, "KAFKA_") {
			vals[k] = v
		}
	}
	if vals["KAFKA_BROKERS"] == "" || vals["KAFKA_"+kind+"_BROKERS"] == "" {
		t.Fatalf("kafka.sh up printed no %s address:\n%s", kind, out)
	}
	return vals
}

// saslBroker starts a private broker with a SASL_PLAINTEXT listener (user
// flightsink / flightsink-secret, PLAIN and SCRAM) and returns its plain
// and SASL addresses.
func saslBroker(t *testing.T) (plain, sasl string) {
	v := secureBroker(t, "SASL")
	return v["KAFKA_BROKERS"], v["KAFKA_SASL_BROKERS"]
}

// TestKafkaTLS: flightsink reaches the broker's SSL listener, verifying it
// with kafka.tls.ca_file; without the CA the server refuses to start.
func TestKafkaTLS(t *testing.T) {
	v := secureBroker(t, "TLS")
	plain, tlsAddr, ca := v["KAFKA_BROKERS"], v["KAFKA_TLS_BROKERS"], v["KAFKA_TLS_CA"]
	topic := kafkatest.TopicName(t)
	kafkatest.CreateTopic(t, []string{plain}, topic, 1, nil)
	cfg := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(cfg, []byte("kafka:\n  tls:\n    enabled: true\n    ca_file: "+ca+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	srv := startServer(t, serverConfig{brokers: []string{tlsAddr}, replica: "tls", prefix: uniquePrefix(t), extra: []string{"--config", cfg}})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	done, err := upload(ctx, srv.addr, topic, "tls-writer", 300, 100, 100, nil)
	if err != nil || done.CommittedRows != 300 {
		t.Fatalf("upload over TLS: %+v, %v", done, err)
	}
	checkExactlyOnce(t, []string{plain}, topic, 300)

	noCA := filepath.Join(t.TempDir(), "config.yaml")
	_ = os.WriteFile(noCA, []byte("kafka:\n  produce_timeout: 3s\n  tls:\n    enabled: true\n"), 0o600)
	out, err := exec.Command(binary(t), "serve", "--config", noCA, "--brokers", tlsAddr, "--listen", freeAddr(t)).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "certificate") {
		t.Fatalf("serve without the CA: %v\n%s\nwant a start-up failure about the certificate", err, out)
	}
	t.Logf("without the CA: %s", lastLine(string(out)))
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
