package main

import (
	"strings"
	"testing"
)

// TestCheckConfig: serve --check-config validates the file, environment
// and flags and exits 0, without a network call.
func TestCheckConfig(t *testing.T) {
	b := newFakeBroker(t)
	code, stdout, stderr := run(t, nil, "serve", "--check-config", "--config", "/dev/null", "--brokers", b.addr())
	if code != 0 || !strings.Contains(stdout, "valid") {
		t.Fatalf("exit %d, stdout %q, stderr %q: want 0 and a line saying the configuration is valid", code, stdout, stderr)
	}
	b.requireUntouched(t)
	code, _, stderr = run(t, []string{"FLIGHTSINK_KAFKA_LINGER=-1s"}, "serve", "--check-config", "--config", "/dev/null", "--brokers", b.addr())
	if code != 1 || !strings.Contains(stderr, "kafka.linger") {
		t.Fatalf("exit %d, stderr %q: want 1 and the error naming kafka.linger", code, stderr)
	}
	b.requireUntouched(t)
}

// TestBadConfigBeforeKafka: a bad setting is reported as itself before
// flightsink dials Kafka, never as Kafka being unavailable, with
// --check-config and without it.
func TestBadConfigBeforeKafka(t *testing.T) {
	tokens := writeFile(t, "config.yaml", "auth:\n  tokens:\n    - {principal: loader, token: {env: NO_SUCH_VARIABLE_SET}}\n"+
		"  principals:\n    - {name: loader, topics: ['*']}\n")
	for _, c := range []struct {
		name    string
		env     []string
		args    []string
		setting string
	}{
		{"anonymous beyond loopback", nil, []string{"--listen", "0.0.0.0:0"}, "auth.allow_anonymous"},
		{"flight TLS files missing", []string{"FLIGHTSINK_FLIGHT_TLS_CERT_FILE=/nonexistent/tls.crt",
			"FLIGHTSINK_FLIGHT_TLS_KEY_FILE=/nonexistent/tls.key"}, nil, "flight.tls_cert_file"},
		{"token secret unset", nil, []string{"--config", tokens}, "auth.tokens[0].token"},
		{"kafka CA missing", []string{"FLIGHTSINK_KAFKA_TLS_ENABLED=true"}, []string{"--config", writeFile(t, "k.yaml",
			"kafka:\n  tls: {enabled: true, ca_file: /nonexistent/ca.pem}\n")}, "kafka.tls.ca_file"},
		{"metrics listener", []string{"FLIGHTSINK_METRICS_LISTEN=nowhere"}, nil, "metrics.listen"},
	} {
		for _, check := range []bool{true, false} {
			b := newFakeBroker(t)
			args := []string{"serve", "--config", "/dev/null"}
			if check {
				args = append(args, "--check-config")
			}
			args = append(append(args, c.args...), "--brokers", b.addr())
			env := append([]string{"FLIGHTSINK_KAFKA_PRODUCE_TIMEOUT=1s"}, c.env...)
			code, _, stderr := run(t, env, args...)
			if code != 1 || !strings.Contains(stderr, c.setting) || strings.Contains(stderr, "unavailable") {
				t.Errorf("%s (check-config %v): exit %d, stderr %q: want 1 and an error naming %s", c.name, check, code, stderr, c.setting)
			}
			b.requireUntouched(t)
		}
	}
}
