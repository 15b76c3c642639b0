# flightsink: build, vet, and test against a real local Apache Kafka broker
# (scripts/kafka.sh runs one from Maven jars; no Docker needed).
SHELL := /bin/bash
GO ?= go
# broker name for kafka-up / kafka-down (scripts/kafka.sh NAME)
KAFKA_NAME ?= default
# kafka-up KAFKA_NODES=3: a three-node cluster behind network proxies (scripts/kafka.sh up NAME --brokers 3)
KAFKA_NODES ?= 1

.PHONY: all build vet lint test test-faults kafka-up kafka-down kafka-status clean

all: build

build:
	@echo "building bin/flightsink (the first build compiles the dependencies: a minute or two)..."
	$(GO) build -v -buildvcs=auto -o bin/flightsink ./cmd/flightsink
	@bin/flightsink version

# the Go client (clients/go/fsclient) is a module of its own
vet:
	$(GO) vet ./...
	cd clients/go/fsclient && $(GO) vet ./...

# golangci-lint's default linters as .golangci.yml tunes them; installs the pinned version
# into $(go env GOPATH)/bin when it is not there (a few minutes, once). Not part of `make test`:
# about 30 s warm, two minutes cold on a small machine.
GOLANGCI_LINT_VERSION ?= v2.15.0
GOLANGCI_LINT ?= $(shell $(GO) env GOPATH)/bin/golangci-lint
lint:
	@if ! "$(GOLANGCI_LINT)" version 2>/dev/null | grep -q "version $(GOLANGCI_LINT_VERSION:v%=%)"; then \
		echo "installing golangci-lint $(GOLANGCI_LINT_VERSION) (once)..."; \
		$(GO) install github.com/golangci/golangci-lint/v2/cmd/golangci-lint@$(GOLANGCI_LINT_VERSION); \
	fi
	"$(GOLANGCI_LINT)" run ./...

# installs test deps, starts a broker, runs go vet + go test -race (+ pytest), stops the broker
test:
	bash scripts/test.sh

# the long nemesis schedule of tests/faults on a three-node cluster of its own (docs/faults.md):
# FAULTS_DURATION (default 10m) of random faults, FAULTS_SEED to repeat a schedule; the figures
# are appended to FAULTS_REPORT (default .cache/faults-report.md)
FAULTS_DURATION ?= 10m
FAULTS_REPORT ?= $(CURDIR)/.cache/faults-report.md
test-faults:
	@mkdir -p $(dir $(FAULTS_REPORT))
	FLIGHTSINK_TEST_FAULTS_DURATION=$(FAULTS_DURATION) FLIGHTSINK_TEST_FAULTS_SEED=$(FAULTS_SEED) FLIGHTSINK_TEST_FAULTS_REPORT=$(FAULTS_REPORT) \
		$(GO) test -race -count=1 -timeout 90m -v -run 'TestNemesis' ./tests/faults

# prints KAFKA_BROKERS=127.0.0.1:PORT[,...] as its last line
kafka-up:
	@bash scripts/kafka.sh up $(KAFKA_NAME) $(if $(filter-out 1,$(KAFKA_NODES)),--brokers $(KAFKA_NODES))

kafka-down:
	@bash scripts/kafka.sh down $(KAFKA_NAME)

kafka-status:
	@bash scripts/kafka.sh status

clean:
	rm -rf bin

# benchmark harness: own broker, contenders L/A/AE/B/P, small streams, many streams, cost curves; writes bench/RESULTS.md and bench/charts/
# (BENCH_QUICK=1 for a short run; see bench/README.md)
.PHONY: bench bench-soak
bench:
	bash bench/run.sh

# soak run: one exactly-once stream for BENCH_SOAK_SECONDS (default 600), server memory curve in bench/SOAK.md
bench-soak:
	BENCH_SOAK_SECONDS=$${BENCH_SOAK_SECONDS:-600} bash bench/run.sh
