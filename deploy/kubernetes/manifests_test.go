// Package kubernetes holds flightsink's Kubernetes manifests; its test is
// their lint: every document parses, names itself, and the pieces fit (the
// StatefulSet's replica id, probes, ports, Services, ConfigMap, Secret). It
// also checks the docker-compose Prometheus wiring.
package kubernetes

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/flightsink/flightsink/cmd/flightsink/config"
	"github.com/flightsink/flightsink/flightsink"
)

const (
	flightPort  = 8815
	metricsPort = 9464
)

// doc is one YAML document of a manifest file.
type doc struct {
	file string
	node yaml.Node
	head struct {
		APIVersion string `yaml:"apiVersion"`
		Kind       string `yaml:"kind"`
		Metadata   struct {
			Name   string            `yaml:"name"`
			Labels map[string]string `yaml:"labels"`
		} `yaml:"metadata"`
	}
}

func (d *doc) String() string {
	return fmt.Sprintf("%s %s/%s", d.file, d.head.Kind, d.head.Metadata.Name)
}

func (d *doc) decode(t *testing.T, v any) {
	t.Helper()
	if err := d.node.Decode(v); err != nil {
		t.Fatalf("%s: %v", d, err)
	}
}

// loadDocs parses every document of every *.yaml/*.yml file here.
func loadDocs(t *testing.T) []*doc {
	t.Helper()
	files, err := filepath.Glob("*.y*ml")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatal("no manifests found")
	}
	var docs []*doc
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		dec := yaml.NewDecoder(bytes.NewReader(b))
		for i := 0; ; i++ {
			d := &doc{file: f}
			if err := dec.Decode(&d.node); errors.Is(err, io.EOF) {
				break
			} else if err != nil {
				t.Fatalf("%s document %d: %v", f, i, err)
			}
			if d.node.Kind == 0 || len(d.node.Content) == 0 || d.node.Content[0].Kind != yaml.MappingNode {
				t.Fatalf("%s document %d is empty or not a mapping", f, i)
			}
			d.decode(t, &d.head)
			docs = append(docs, d)
		}
	}
	return docs
}

var apiVersions = map[string]string{
	"StatefulSet":         "apps/v1",
	"Service":             "v1",
	"ConfigMap":           "v1",
	"Secret":              "v1",
	"PodDisruptionBudget": "policy/v1",
	"Kustomization":       "kustomize.config.k8s.io/v1beta1",
}

// Typed views of the parts the test checks (yaml.v3 ignores the rest).

type intOrString = any // an int port or a port name

type probe struct {
	HTTPGet *struct {
		Path string      `yaml:"path"`
		Port intOrString `yaml:"port"`
	} `yaml:"httpGet"`
}

type container struct {
	Name  string   `yaml:"name"`
	Image string   `yaml:"image"`
	Args  []string `yaml:"args"`
	Ports []struct {
		Name          string `yaml:"name"`
		ContainerPort int    `yaml:"containerPort"`
	} `yaml:"ports"`
	Env []struct {
		Name      string `yaml:"name"`
		Value     string `yaml:"value"`
		ValueFrom *struct {
			FieldRef *struct {
				FieldPath string `yaml:"fieldPath"`
			} `yaml:"fieldRef"`
		} `yaml:"valueFrom"`
	} `yaml:"env"`
	EnvFrom []struct {
		SecretRef *struct {
			Name string `yaml:"name"`
		} `yaml:"secretRef"`
	} `yaml:"envFrom"`
	VolumeMounts []struct {
		Name      string `yaml:"name"`
		MountPath string `yaml:"mountPath"`
	} `yaml:"volumeMounts"`
	Resources struct {
		Requests map[string]string `yaml:"requests"`
		Limits   map[string]string `yaml:"limits"`
	} `yaml:"resources"`
	StartupProbe   *probe `yaml:"startupProbe"`
	LivenessProbe  *probe `yaml:"livenessProbe"`
	ReadinessProbe *probe `yaml:"readinessProbe"`
}

// port resolves a probe's or Service's target port (number or name) to a
// container port number.
func (c *container) port(p intOrString) (int, bool) {
	switch v := p.(type) {
	case int:
		for _, cp := range c.Ports {
			if cp.ContainerPort == v {
				return v, true
			}
		}
	case string:
		if n, err := strconv.Atoi(v); err == nil {
			return c.port(n)
		}
		for _, cp := range c.Ports {
			if cp.Name == v {
				return cp.ContainerPort, true
			}
		}
	}
	return 0, false
}

type statefulSet struct {
	Spec struct {
		Replicas    int    `yaml:"replicas"`
		ServiceName string `yaml:"serviceName"`
		Selector    struct {
			MatchLabels map[string]string `yaml:"matchLabels"`
		} `yaml:"selector"`
		Template struct {
			Metadata struct {
				Labels map[string]string `yaml:"labels"`
			} `yaml:"metadata"`
			Spec struct {
				TerminationGracePeriodSeconds int         `yaml:"terminationGracePeriodSeconds"`
				Containers                    []container `yaml:"containers"`
				Volumes                       []struct {
					Name      string `yaml:"name"`
					ConfigMap *struct {
						Name string `yaml:"name"`
					} `yaml:"configMap"`
					Secret *struct {
						SecretName string `yaml:"secretName"`
					} `yaml:"secret"`
				} `yaml:"volumes"`
			} `yaml:"spec"`
		} `yaml:"template"`
	} `yaml:"spec"`
}

type service struct {
	Metadata struct {
		Name string `yaml:"name"`
	} `yaml:"metadata"`
	Spec struct {
		Type      string            `yaml:"type"`
		ClusterIP string            `yaml:"clusterIP"`
		Selector  map[string]string `yaml:"selector"`
		Ports     []struct {
			Name       string      `yaml:"name"`
			Port       int         `yaml:"port"`
			Protocol   string      `yaml:"protocol"`
			TargetPort intOrString `yaml:"targetPort"`
		} `yaml:"ports"`
	} `yaml:"spec"`
}

// manifests are the parsed documents by kind.
type manifests struct {
	all       []*doc
	sts       statefulSet
	services  []service
	configMap struct {
		Metadata struct {
			Name string `yaml:"name"`
		} `yaml:"metadata"`
		Data map[string]string `yaml:"data"`
	}
	secret struct {
		Metadata struct {
			Name string `yaml:"name"`
		} `yaml:"metadata"`
		Type       string            `yaml:"type"`
		StringData map[string]string `yaml:"stringData"`
	}
	pdb struct {
		Spec struct {
			MaxUnavailable any `yaml:"maxUnavailable"`
			MinAvailable   any `yaml:"minAvailable"`
			Selector       struct {
				MatchLabels map[string]string `yaml:"matchLabels"`
			} `yaml:"selector"`
		} `yaml:"spec"`
	}
	kustomization struct {
		Resources []string `yaml:"resources"`
	}
}

func load(t *testing.T) *manifests {
	t.Helper()
	m := &manifests{all: loadDocs(t)}
	count := map[string]int{}
	for _, d := range m.all {
		count[d.head.Kind]++
		switch d.head.Kind {
		case "StatefulSet":
			d.decode(t, &m.sts)
		case "Service":
			var s service
			d.decode(t, &s)
			m.services = append(m.services, s)
		case "ConfigMap":
			d.decode(t, &m.configMap)
		case "Secret":
			d.decode(t, &m.secret)
		case "PodDisruptionBudget":
			d.decode(t, &m.pdb)
		case "Kustomization":
			d.decode(t, &m.kustomization)
		}
	}
	want := map[string]int{"StatefulSet": 1, "Service": 2, "ConfigMap": 1, "Secret": 1, "PodDisruptionBudget": 1, "Kustomization": 1}
	for kind, n := range want {
		if count[kind] != n {
			t.Fatalf("%d %s documents, want %d", count[kind], kind, n)
		}
	}
	return m
}

func (m *manifests) container(t *testing.T) *container {
	t.Helper()
	cs := m.sts.Spec.Template.Spec.Containers
	if len(cs) != 1 {
		t.Fatalf("StatefulSet has %d containers, want 1", len(cs))
	}
	return &cs[0]
}

// matches reports whether a selector selects pods with these labels.
func matches(selector, labels map[string]string) bool {
	if len(selector) == 0 {
		return false
	}
	for k, v := range selector {
		if labels[k] != v {
			return false
		}
	}
	return true
}

// TestEveryDocumentNamesItself: apiVersion, kind and metadata.name on every
// document (a Kustomization has no name), with the expected apiVersion.
func TestEveryDocumentNamesItself(t *testing.T) {
	for _, d := range loadDocs(t) {
		h := d.head
		if h.APIVersion == "" || h.Kind == "" {
			t.Errorf("%s: apiVersion %q kind %q: both are required", d.file, h.APIVersion, h.Kind)
			continue
		}
		if want, ok := apiVersions[h.Kind]; !ok {
			t.Errorf("%s: unexpected kind %s", d, h.Kind)
		} else if h.APIVersion != want {
			t.Errorf("%s: apiVersion %s, want %s", d, h.APIVersion, want)
		}
		if h.Kind != "Kustomization" && h.Metadata.Name == "" {
			t.Errorf("%s: metadata.name is missing", d)
		}
	}
}

// TestStatefulSet: 3 replicas governed by the headless Service, the replica
// id from the pod name, probes on the metrics port, memory bounded, the
// config and the Secret wired in.
func TestStatefulSet(t *testing.T) {
	m := load(t)
	sts := m.sts.Spec
	if sts.Replicas != 3 {
		t.Errorf("replicas %d, want 3", sts.Replicas)
	}
	labels := sts.Template.Metadata.Labels
	if !matches(sts.Selector.MatchLabels, labels) {
		t.Errorf("selector %v does not select the pod labels %v", sts.Selector.MatchLabels, labels)
	}
	c := m.container(t)

	// kafka.replica from the pod name (unique and stable per ordinal).
	var replica bool
	for _, e := range c.Env {
		if e.Name != "FLIGHTSINK_KAFKA_REPLICA" {
			continue
		}
		replica = true
		if e.Value != "" || e.ValueFrom == nil || e.ValueFrom.FieldRef == nil || e.ValueFrom.FieldRef.FieldPath != "metadata.name" {
			t.Errorf("FLIGHTSINK_KAFKA_REPLICA must come from fieldRef metadata.name (the pod name), got %+v", e)
		}
	}
	if !replica {
		t.Error("the container has no FLIGHTSINK_KAFKA_REPLICA")
	}

	// Container ports.
	for name, want := range map[string]int{"flight": flightPort, "metrics": metricsPort} {
		if got, ok := c.port(name); !ok || got != want {
			t.Errorf("container port %q = %d (found %v), want %d", name, got, ok, want)
		}
	}

	// Probes: liveness and startup on /healthz, readiness on /readyz, all on 9464.
	for _, p := range []struct {
		name  string
		probe *probe
		path  string
	}{
		{"livenessProbe", c.LivenessProbe, "/healthz"},
		{"readinessProbe", c.ReadinessProbe, "/readyz"},
		{"startupProbe", c.StartupProbe, "/healthz"},
	} {
		if p.probe == nil || p.probe.HTTPGet == nil {
			t.Errorf("%s: missing or not httpGet", p.name)
			continue
		}
		if p.probe.HTTPGet.Path != p.path {
			t.Errorf("%s path %q, want %q", p.name, p.probe.HTTPGet.Path, p.path)
		}
		if port, ok := c.port(p.probe.HTTPGet.Port); !ok || port != metricsPort {
			t.Errorf("%s port %v resolves to %d (found %v), want %d", p.name, p.probe.HTTPGet.Port, port, ok, metricsPort)
		}
	}

	// Resources: requests and limits, memory requests == limits.
	for _, r := range []string{"cpu", "memory"} {
		if c.Resources.Requests[r] == "" || c.Resources.Limits[r] == "" {
			t.Errorf("resources: %s needs a request and a limit, got %+v", r, c.Resources)
		}
	}
	if c.Resources.Requests["memory"] != c.Resources.Limits["memory"] {
		t.Errorf("memory request %s != limit %s", c.Resources.Requests["memory"], c.Resources.Limits["memory"])
	}

	// The Secret's variables and the ConfigMap's config file.
	var fromSecret bool
	for _, ef := range c.EnvFrom {
		if ef.SecretRef != nil && ef.SecretRef.Name == m.secret.Metadata.Name {
			fromSecret = true
		}
	}
	if !fromSecret {
		t.Errorf("the container does not load the Secret %q with envFrom", m.secret.Metadata.Name)
	}
	var configVolume string
	for _, v := range sts.Template.Spec.Volumes {
		if v.ConfigMap != nil && v.ConfigMap.Name == m.configMap.Metadata.Name {
			configVolume = v.Name
		}
	}
	if configVolume == "" {
		t.Fatalf("no volume mounts the ConfigMap %q", m.configMap.Metadata.Name)
	}
	var mountedConfig string
	for _, vm := range c.VolumeMounts {
		if vm.Name == configVolume {
			mountedConfig = filepath.Join(vm.MountPath, "config.yaml")
		}
	}
	if i := slices.Index(c.Args, "--config"); i < 0 || i+1 >= len(c.Args) || c.Args[i+1] != mountedConfig {
		t.Errorf("args %v do not read the mounted config %q", c.Args, mountedConfig)
	}
	if sts.Template.Spec.TerminationGracePeriodSeconds <= 30 {
		t.Errorf("terminationGracePeriodSeconds %d must exceed flight.shutdown_grace (30s)", sts.Template.Spec.TerminationGracePeriodSeconds)
	}
}

// TestServices: a headless Service governs the StatefulSet, a ClusterIP
// Service serves clients on 8815; every Service selects the pods and
// targets a container port that exists with the same number.
func TestServices(t *testing.T) {
	m := load(t)
	c := m.container(t)
	labels := m.sts.Spec.Template.Metadata.Labels
	var headless, clients bool
	for _, s := range m.services {
		if !matches(s.Spec.Selector, labels) {
			t.Errorf("Service %s selector %v does not select the pods %v", s.Metadata.Name, s.Spec.Selector, labels)
		}
		if len(s.Spec.Ports) == 0 {
			t.Errorf("Service %s has no ports", s.Metadata.Name)
		}
		for _, p := range s.Spec.Ports {
			target, ok := c.port(p.TargetPort)
			if !ok {
				t.Errorf("Service %s port %s targets %v: no such container port", s.Metadata.Name, p.Name, p.TargetPort)
			} else if target != p.Port {
				t.Errorf("Service %s port %s: %d targets container port %d", s.Metadata.Name, p.Name, p.Port, target)
			}
		}
		switch {
		case s.Spec.ClusterIP == "None":
			if s.Metadata.Name == m.sts.Spec.ServiceName {
				headless = true
			}
		case s.Spec.Type == "" || s.Spec.Type == "ClusterIP":
			for _, p := range s.Spec.Ports {
				if p.Port == flightPort {
					clients = true
				}
			}
		}
	}
	if !headless {
		t.Errorf("no headless Service named %q (the StatefulSet's serviceName)", m.sts.Spec.ServiceName)
	}
	if !clients {
		t.Error("no ClusterIP Service for clients on 8815")
	}
}

// TestConfigMap: config.yaml parses, listens on all interfaces on the
// container ports, and uses only settings config.yaml at the repository
// root documents (a typo would stop the server: unknown keys are refused).
func TestConfigMap(t *testing.T) {
	m := load(t)
	text, ok := m.configMap.Data["config.yaml"]
	if !ok {
		t.Fatal("the ConfigMap has no config.yaml")
	}
	var cfg map[string]any
	if err := yaml.Unmarshal([]byte(text), &cfg); err != nil {
		t.Fatalf("ConfigMap config.yaml: %v", err)
	}
	get := func(path string) any {
		var v any = cfg
		for _, k := range strings.Split(path, ".") {
			mm, ok := v.(map[string]any)
			if !ok {
				return nil
			}
			v = mm[k]
		}
		return v
	}
	if got := get("flight.listen"); got != fmt.Sprintf("0.0.0.0:%d", flightPort) {
		t.Errorf("flight.listen %v, want 0.0.0.0:%d", got, flightPort)
	}
	if got := get("metrics.listen"); got != fmt.Sprintf("0.0.0.0:%d", metricsPort) {
		t.Errorf("metrics.listen %v, want 0.0.0.0:%d", got, metricsPort)
	}
	if get("kafka.replica") != nil {
		t.Error("kafka.replica must not be in the shared ConfigMap: it comes from the pod name")
	}

	// Every key exists in the documented config.yaml, as a setting or in a
	// commented example (kafka.sasl.username). The metrics section, still
	// being added, may be missing for now: logged, not failed.
	pending := []string{"metrics."}
	b, err := os.ReadFile("../../config.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var documented map[string]any
	if err := yaml.Unmarshal(b, &documented); err != nil {
		t.Fatal(err)
	}
	var walk func(prefix string, ours, doc map[string]any)
	walk = func(prefix string, ours, doc map[string]any) {
		for k, v := range ours {
			path := prefix + k
			dv, ok := doc[k]
			if !ok {
				if bytes.Contains(b, []byte(" "+k+":")) {
					continue // documented in a commented example
				}
				if slices.ContainsFunc(pending, func(p string) bool { return strings.HasPrefix(path+".", p) }) {
					t.Logf("%s is not in config.yaml yet (pending)", path)
				} else {
					t.Errorf("ConfigMap sets %s, which config.yaml does not document", path)
				}
				continue
			}
			om, ok1 := v.(map[string]any)
			dm, ok2 := dv.(map[string]any)
			if ok1 && ok2 {
				walk(path+".", om, dm)
			}
		}
	}
	walk("", cfg, documented)

	// Secrets are referenced from the Secret's variables, never inlined.
	for _, ref := range []string{"FLIGHTSINK_KAFKA_SASL_PASSWORD", "FLIGHTSINK_AUTH_TOKEN_LOADER"} {
		if !strings.Contains(text, "{env: "+ref+"}") {
			t.Errorf("config.yaml does not take %s from the environment", ref)
		}
		if _, ok := m.secret.StringData[ref]; !ok {
			t.Errorf("the Secret example lacks %s", ref)
		}
	}
}

// TestSecretAndPDB: the Secret example only holds FLIGHTSINK_* variables and
// stays out of kustomization; the PDB selects the pods and allows one
// disruption; kustomization lists every other manifest.
func TestSecretAndPDB(t *testing.T) {
	m := load(t)
	if m.secret.Type != "Opaque" || len(m.secret.StringData) == 0 {
		t.Errorf("Secret: type %q with %d keys, want Opaque with stringData", m.secret.Type, len(m.secret.StringData))
	}
	for k := range m.secret.StringData {
		if !strings.HasPrefix(k, "FLIGHTSINK_") {
			t.Errorf("Secret key %s is not a FLIGHTSINK_* variable", k)
		}
	}
	if !matches(m.pdb.Spec.Selector.MatchLabels, m.sts.Spec.Template.Metadata.Labels) {
		t.Errorf("PDB selector %v does not select the pods", m.pdb.Spec.Selector.MatchLabels)
	}
	if m.pdb.Spec.MaxUnavailable != 1 {
		t.Errorf("PDB maxUnavailable %v, want 1", m.pdb.Spec.MaxUnavailable)
	}
	files, _ := filepath.Glob("*.y*ml")
	for _, f := range files {
		listed := slices.Contains(m.kustomization.Resources, f)
		switch {
		case f == "kustomization.yaml":
		case strings.Contains(f, ".example."):
			if listed {
				t.Errorf("kustomization applies the example %s", f)
			}
		case !listed:
			t.Errorf("kustomization does not list %s", f)
		}
	}
	for _, r := range m.kustomization.Resources {
		if _, err := os.Stat(r); err != nil {
			t.Errorf("kustomization resource %s: %v", r, err)
		}
	}
}

// TestDockerCompose: docker-compose.yml parses, has a prometheus service that
// mounts deploy/prometheus/prometheus.yml, which scrapes every flightsink
// container on 9464 (DNS discovery of the service name, so scaled-out
// replicas are all scraped), and flightsink exposes its metrics listener and
// has a readiness healthcheck.
func TestDockerCompose(t *testing.T) {
	b, err := os.ReadFile("../../docker-compose.yml")
	if err != nil {
		t.Fatal(err)
	}
	type svc struct {
		Image       string            `yaml:"image"`
		Ports       []string          `yaml:"ports"`
		Environment map[string]string `yaml:"environment"`
		Volumes     []string          `yaml:"volumes"`
		Healthcheck *struct {
			Test []string `yaml:"test"`
		} `yaml:"healthcheck"`
	}
	var compose struct {
		Services map[string]svc `yaml:"services"`
	}
	if err := yaml.Unmarshal(b, &compose); err != nil {
		t.Fatalf("docker-compose.yml: %v", err)
	}
	fs, ok := compose.Services["flightsink"]
	if !ok {
		t.Fatal("docker-compose.yml has no flightsink service")
	}
	if got := fs.Environment["FLIGHTSINK_METRICS_LISTEN"]; got != fmt.Sprintf("0.0.0.0:%d", metricsPort) {
		t.Errorf("flightsink FLIGHTSINK_METRICS_LISTEN %q, want 0.0.0.0:%d", got, metricsPort)
	}
	if !slices.ContainsFunc(fs.Ports, func(p string) bool {
		return strings.HasPrefix(p, fmt.Sprintf("%d:", metricsPort)) || strings.HasPrefix(p, fmt.Sprintf("%d-", metricsPort))
	}) {
		t.Errorf("flightsink does not publish %d: %v", metricsPort, fs.Ports)
	}
	if fs.Healthcheck == nil || !strings.Contains(strings.Join(fs.Healthcheck.Test, " "), fmt.Sprintf(":%d/readyz", metricsPort)) {
		t.Errorf("flightsink healthcheck does not probe /readyz on %d", metricsPort)
	}

	prom, ok := compose.Services["prometheus"]
	if !ok {
		t.Fatal("docker-compose.yml has no prometheus service")
	}
	if !strings.Contains(prom.Image, "prometheus") {
		t.Errorf("prometheus image %q", prom.Image)
	}
	if prom.Healthcheck == nil {
		t.Error("prometheus has no healthcheck")
	}
	var mounted string
	for _, v := range prom.Volumes {
		if src, dst, ok := strings.Cut(v, ":"); ok && strings.HasPrefix(dst, "/etc/prometheus/prometheus.yml") {
			mounted = src
		}
	}
	if mounted != "./deploy/prometheus/prometheus.yml" {
		t.Fatalf("prometheus mounts %q as its config, want ./deploy/prometheus/prometheus.yml", mounted)
	}
	pb, err := os.ReadFile(filepath.Join("../..", mounted))
	if err != nil {
		t.Fatal(err)
	}
	var promCfg struct {
		ScrapeConfigs []struct {
			JobName       string `yaml:"job_name"`
			MetricsPath   string `yaml:"metrics_path"`
			StaticConfigs []struct {
				Targets []string `yaml:"targets"`
			} `yaml:"static_configs"`
			DNSSDConfigs []struct {
				Names []string `yaml:"names"`
				Type  string   `yaml:"type"`
				Port  int      `yaml:"port"`
			} `yaml:"dns_sd_configs"`
		} `yaml:"scrape_configs"`
	}
	dec := yaml.NewDecoder(bytes.NewReader(pb))
	if err := dec.Decode(&promCfg); err != nil {
		t.Fatalf("prometheus.yml: %v", err)
	}
	want := fmt.Sprintf("flightsink:%d", metricsPort)
	var scraped bool
	for _, sc := range promCfg.ScrapeConfigs {
		for _, d := range sc.DNSSDConfigs {
			if slices.Contains(d.Names, "flightsink") && d.Type == "A" && d.Port == metricsPort &&
				(sc.MetricsPath == "" || sc.MetricsPath == "/metrics") {
				scraped = true
			}
		}
		for _, st := range sc.StaticConfigs {
			if slices.Contains(st.Targets, want) && (sc.MetricsPath == "" || sc.MetricsPath == "/metrics") {
				scraped = true
			}
		}
	}
	if !scraped {
		t.Errorf("prometheus.yml does not scrape %s/metrics", want)
	}
}

// TestConfigMapStarts: the ConfigMap's config.yaml, with the Secret
// example's variables and the pod's replica name, passes the server's
// start-up checks (the same ones `flightsink serve` runs before it listens:
// credentials on 0.0.0.0 need TLS, every token once, session keys long
// enough), with the TLS files where the StatefulSet mounts the TLS Secret.
func TestConfigMapStarts(t *testing.T) {
	m := load(t)
	c := m.container(t)
	cfg := loadConfigMap(t, m)

	// The TLS files come from a mounted kubernetes.io/tls Secret.
	if cfg.Flight.TLSCertFile == "" || cfg.Flight.TLSKeyFile == "" {
		t.Fatalf("flight.tls_cert_file %q / tls_key_file %q: tokens on 0.0.0.0 need TLS", cfg.Flight.TLSCertFile, cfg.Flight.TLSKeyFile)
	}
	secretMounts := map[string]string{} // mount path → Secret name
	for _, vm := range c.VolumeMounts {
		for _, v := range m.sts.Spec.Template.Spec.Volumes {
			if v.Name == vm.Name && v.Secret != nil {
				secretMounts[vm.MountPath] = v.Secret.SecretName
			}
		}
	}
	for file, key := range map[string]string{cfg.Flight.TLSCertFile: "tls.crt", cfg.Flight.TLSKeyFile: "tls.key"} {
		if secretMounts[filepath.Dir(file)] == "" || filepath.Base(file) != key {
			t.Errorf("%s is not the %s of a Secret the StatefulSet mounts (Secret mounts: %v)", file, key, secretMounts)
		}
	}

	// The server starts with the files at those paths (written here).
	cfg.Flight.TLSCertFile, cfg.Flight.TLSKeyFile = selfSignedFiles(t)
	srv, err := flightsink.NewServer(cfg.Flight, nil, flightsink.WithAuth(cfg.Auth))
	if err != nil {
		t.Fatalf("the ConfigMap's config does not start: %v", err)
	}
	srv.GRPC().Stop()
	if !srv.AuthEnabled() {
		t.Error("the ConfigMap's config turns auth off")
	}

	// The rules are live: the same config without TLS does not start.
	cfg.Flight.TLSCertFile, cfg.Flight.TLSKeyFile = "", ""
	if _, err := flightsink.NewServer(cfg.Flight, nil, flightsink.WithAuth(cfg.Auth)); err == nil || !strings.Contains(err.Error(), "auth.allow_insecure_transport") {
		t.Errorf("without TLS: %v, want the start-up refusal naming auth.allow_insecure_transport", err)
	}
}

// loadConfigMap loads the ConfigMap's config.yaml as the pod does, with
// the pod's whole environment (podEnv).
func loadConfigMap(t *testing.T, m *manifests) config.Config {
	t.Helper()
	file := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(file, []byte(m.configMap.Data["config.yaml"]), 0o600); err != nil {
		t.Fatal(err)
	}
	env := podEnv(t, m)
	for k, v := range m.secret.StringData {
		t.Setenv(k, v) // {env: NAME} secrets are read from the process environment
	}
	cfg, err := config.Load(file, env)
	if err != nil {
		t.Fatalf("ConfigMap config.yaml: %v", err)
	}
	// Validated as the pod's start-up does, with the TLS Secret's files
	// (written here) where the StatefulSet mounts them.
	checked := cfg
	if checked.Flight.TLSCertFile != "" {
		checked.Flight.TLSCertFile, checked.Flight.TLSKeyFile = selfSignedFiles(t)
	}
	if err := checked.Validate(); err != nil {
		t.Fatalf("ConfigMap config.yaml: %v", err)
	}
	return cfg
}

// podEnv is the environment a flightsink pod gets: the container's env
// (kafka.replica from the pod name), the Secret's keys (envFrom), and the
// variables the kubelet injects for every Service of the namespace
// (FLIGHTSINK_SERVICE_HOST, FLIGHTSINK_PORT_8815_TCP, ...; for headless
// Services too, although the kubelet skips those).
func podEnv(t *testing.T, m *manifests) []string {
	t.Helper()
	var env []string
	for _, e := range m.container(t).Env {
		v := e.Value
		if e.ValueFrom != nil && e.ValueFrom.FieldRef != nil && e.ValueFrom.FieldRef.FieldPath == "metadata.name" {
			v = m.sts.Spec.ServiceName + "-0"
		}
		env = append(env, e.Name+"="+v)
	}
	for k, v := range m.secret.StringData {
		env = append(env, k+"="+v)
	}
	for i, svc := range m.services {
		prefix := strings.ToUpper(strings.ReplaceAll(svc.Metadata.Name, "-", "_"))
		ip := fmt.Sprintf("10.96.0.%d", i+10)
		for j, p := range svc.Spec.Ports {
			proto := strings.ToUpper(p.Protocol)
			if proto == "" {
				proto = "TCP"
			}
			url := fmt.Sprintf("%s://%s:%d", strings.ToLower(proto), ip, p.Port)
			if j == 0 {
				env = append(env, prefix+"_SERVICE_HOST="+ip, fmt.Sprintf("%s_SERVICE_PORT=%d", prefix, p.Port), prefix+"_PORT="+url)
			}
			if p.Name != "" {
				env = append(env, fmt.Sprintf("%s_SERVICE_PORT_%s=%d", prefix, strings.ToUpper(strings.ReplaceAll(p.Name, "-", "_")), p.Port))
			}
			pp := fmt.Sprintf("%s_PORT_%d_%s", prefix, p.Port, proto)
			env = append(env, pp+"="+url, pp+"_PROTO="+strings.ToLower(proto), fmt.Sprintf("%s_PORT=%d", pp, p.Port), pp+"_ADDR="+ip)
		}
	}
	return env
}

// TestPodEnvironmentIsAccepted: the variables Kubernetes injects for the
// Service named flightsink look like settings (FLIGHTSINK_*) but must never
// stop a pod; the server refuses only what is meant as a setting.
func TestPodEnvironmentIsAccepted(t *testing.T) {
	m := load(t)
	env := podEnv(t, m)
	for _, want := range []string{"FLIGHTSINK_SERVICE_HOST=", "FLIGHTSINK_SERVICE_PORT_FLIGHT=", "FLIGHTSINK_PORT_8815_TCP_ADDR=", "FLIGHTSINK_KAFKA_REPLICA="} {
		if !slices.ContainsFunc(env, func(e string) bool { return strings.HasPrefix(e, want) }) {
			t.Fatalf("the pod environment has no %s...: %v", want, env)
		}
	}
	loadConfigMap(t, m) // fails the test if the environment is refused
	if _, err := config.Load("", append(env, "FLIGHTSINK_KAFKA_BROKER=typo:9092")); err == nil {
		t.Error("a misspelt setting next to the pod's variables was accepted")
	}
}

// selfSignedFiles writes a throw-away certificate and key.
func selfSignedFiles(t *testing.T) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "flightsink"},
		DNSNames: []string{"flightsink"}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile
}

// memoryFormula is config.yaml's memory formula as the docs write it.
const memoryFormula = "128 MiB + 2 × flight.max_streams × (1.25 × kafka.max_buffered_bytes + flight.receive_window_bytes + 3 × flight.max_message_bytes + decoded) + 2 × flight.max_queued_streams × flight.receive_window_bytes"

// TestMemoryLimitFollowsFormula: the container's memory limit covers the
// memory formula for the ConfigMap's settings (clients may compress and send
// dictionaries), GOMEMLIMIT sits a little under the limit, and config.yaml,
// the README and statefulset.yaml quote the same formula.
func TestMemoryLimitFollowsFormula(t *testing.T) {
	m := load(t)
	bound := config.MemoryBound(loadConfigMap(t, m), true)
	c := m.container(t)
	limit := quantityBytes(t, c.Resources.Limits["memory"])
	if limit < bound {
		t.Errorf("memory limit %s (%d MiB) is under the memory formula's %d MiB for the ConfigMap's settings",
			c.Resources.Limits["memory"], limit>>20, bound>>20)
	}
	if limit > bound*3/2 {
		t.Errorf("memory limit %d MiB is far over the formula's %d MiB: lower it or raise the settings", limit>>20, bound>>20)
	}
	var gomemlimit int64
	for _, e := range c.Env {
		if e.Name == "GOMEMLIMIT" {
			gomemlimit = quantityBytes(t, strings.TrimSuffix(e.Value, "B"))
		}
	}
	if gomemlimit < limit*8/10 || gomemlimit >= limit {
		t.Errorf("GOMEMLIMIT %d MiB should sit a little under the memory limit %d MiB", gomemlimit>>20, limit>>20)
	}
	t.Logf("ConfigMap settings: formula %d MiB, container limit %d MiB, GOMEMLIMIT %d MiB", bound>>20, limit>>20, gomemlimit>>20)
	for _, file := range []string{"../../config.yaml", "../../README.md", "statefulset.yaml"} {
		b, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		text := strings.Join(strings.Fields(strings.NewReplacer("#", " ", "`", " ").Replace(string(b))), " ")
		if !strings.Contains(text, memoryFormula) {
			t.Errorf("%s does not quote the memory formula %q", file, memoryFormula)
		}
	}
}

// quantityBytes reads a Kubernetes memory quantity in Mi or Gi (or Go's
// GOMEMLIMIT without its B).
func quantityBytes(t *testing.T, q string) int64 {
	t.Helper()
	for suffix, shift := range map[string]uint{"Ki": 10, "Mi": 20, "Gi": 30} {
		if v, ok := strings.CutSuffix(q, suffix); ok {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				t.Fatalf("quantity %q: %v", q, err)
			}
			return n << shift
		}
	}
	t.Fatalf("quantity %q: want Ki, Mi or Gi", q)
	return 0
}
