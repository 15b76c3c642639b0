// Package docker holds the config baked into the flightsink image; its
// test checks that the image and docker-compose.yml work for someone who
// runs them as the README says.
package docker

import (
	"net"
	"os"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/flightsink/flightsink/cmd/flightsink/config"
)

// TestImageListensOnEveryInterface: the config the Dockerfile bakes in is
// the one its default command reads, it is valid, and its listeners are
// reachable through `docker run -p` (not loopback only); without auth it
// refuses to start with the way out in the message.
func TestImageListensOnEveryInterface(t *testing.T) {
	b, err := os.ReadFile("../../Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	dockerfile := string(b)
	if !strings.Contains(dockerfile, "COPY deploy/docker/config.yaml /etc/flightsink/config.yaml") ||
		!strings.Contains(dockerfile, `CMD ["serve", "--config", "/etc/flightsink/config.yaml"]`) {
		t.Fatalf("the Dockerfile does not bake deploy/docker/config.yaml in where its command reads it:\n%s", dockerfile)
	}
	cfg, err := config.Load("config.yaml", []string{"FLIGHTSINK_AUTH_ALLOW_ANONYMOUS=true"})
	if err != nil {
		t.Fatal(err)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	for setting, addr := range map[string]string{"flight.listen": cfg.Flight.Listen, "metrics.listen": cfg.Metrics.Listen} {
		host, _, err := net.SplitHostPort(addr)
		if err != nil || !net.ParseIP(host).IsUnspecified() {
			t.Errorf("%s is %q: docker run -p cannot reach it", setting, addr)
		}
	}
	cfg, err = config.Load("config.yaml", nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "auth.allow_anonymous") {
		t.Errorf("without auth: %v, want the refusal naming auth.allow_anonymous", err)
	}
}

// TestComposeRestartsTheServer: the server waits for Kafka at start-up
// (kafka.startup_timeout), and compose restarts it should it exit anyway.
func TestComposeRestartsTheServer(t *testing.T) {
	b, err := os.ReadFile("../../docker-compose.yml")
	if err != nil {
		t.Fatal(err)
	}
	var compose struct {
		Services map[string]struct {
			Restart     string            `yaml:"restart"`
			Environment map[string]string `yaml:"environment"`
		} `yaml:"services"`
	}
	if err := yaml.Unmarshal(b, &compose); err != nil {
		t.Fatal(err)
	}
	fs := compose.Services["flightsink"]
	if fs.Restart != "unless-stopped" && fs.Restart != "always" && fs.Restart != "on-failure" {
		t.Errorf("flightsink's restart policy is %q: a server that exits stays down", fs.Restart)
	}
	var env []string
	for k, v := range fs.Environment {
		env = append(env, k+"="+v)
	}
	cfg, err := config.Load("", env)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Kafka.StartupTimeout <= 0 {
		t.Errorf("kafka.startup_timeout is %v: the server would not wait for Kafka", cfg.Kafka.StartupTimeout)
	}
}
