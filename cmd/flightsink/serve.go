package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/rs/zerolog"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/flightsink/flightsink/flightsink"
	"github.com/flightsink/flightsink/internal/config"
	"github.com/flightsink/flightsink/internal/health"
	"github.com/flightsink/flightsink/internal/metrics"
	"github.com/flightsink/flightsink/kafka"
)

func serve(args []string) error {
	started := time.Now()
	fl := flag.NewFlagSet("serve", flag.ContinueOnError)
	configPath := fl.String("config", "", "YAML config file (default ./config.yaml if present, else built-in defaults)")
	listen := fl.String("listen", "", "Flight listen address HOST:PORT (overrides flight.listen)")
	brokers := fl.String("brokers", "", "comma-separated Kafka brokers (overrides kafka.brokers)")
	delivery := fl.String("delivery", "", "default delivery: at_least_once or exactly_once (overrides flight.default_delivery)")
	dev := fl.Bool("dev", false, "run an embedded in-memory Kafka-compatible broker (nothing is persisted)")
	devAddr := fl.String("dev-kafka-addr", "127.0.0.1:9092", "address of the embedded broker with --dev")
	if err := fl.Parse(args); err != nil {
		return err
	}
	path := *configPath
	if path == "" {
		if _, err := os.Stat("config.yaml"); err == nil {
			path = "config.yaml"
		} else if !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
	cfg, err := config.Load(path, os.Environ())
	if err != nil {
		return err
	}
	if *listen != "" {
		cfg.Flight.Listen = *listen
	}
	if *brokers != "" {
		cfg.Kafka.Brokers = strings.Split(*brokers, ",")
	}
	if *delivery != "" {
		cfg.Flight.DefaultDelivery = flightsink.Delivery(*delivery)
	}
	log, err := newLogger(cfg.Log)
	if err != nil {
		return err
	}

	if *dev {
		cluster, err := startDevKafka(*devAddr)
		if err != nil {
			return err
		}
		defer cluster.Close()
		cfg.Kafka.Brokers = cluster.ListenAddrs()
		cfg.Kafka.CreateTopics = true
		log.Warn().Strs("kafka_brokers", cfg.Kafka.Brokers).Msg("DEV MODE: embedded in-memory Kafka-compatible broker; " +
			"NOTHING IS PERSISTED and topics are created on first use. Use --brokers or a config file for a real cluster.")
	}
	if err := cfg.Validate(); err != nil {
		return err
	}

	sink, err := kafka.NewSink(cfg.Kafka, log)
	if err != nil {
		return err
	}
	defer sink.Close()
	m := metrics.New()
	sink.SetMetrics(m)
	// Ready only while Kafka answers and this server holds its replica name.
	var claim atomic.Pointer[kafka.ReplicaClaim]
	replica := func() (string, error) {
		if c := claim.Load(); c != nil {
			return c.Name(), c.Err()
		}
		return "", fmt.Errorf("claiming a replica name (kafka.replica %q, kafka.replica_slots %d)", cfg.Kafka.Replica, cfg.Kafka.ReplicaSlots)
	}
	hc := health.New(sink.Ping, cfg.Metrics.CheckInterval, health.WithReplica(replica), health.WithOnChange(func(ok bool, err error) {
		if ok {
			log.Info().Msg("ready")
		} else {
			log.Warn().Err(err).Msg("not ready")
		}
	}))
	defer hc.Close()
	if cfg.Metrics.Listen != "" { // up before Prepare, so /healthz answers during start-up
		mlis, err := net.Listen("tcp", cfg.Metrics.Listen)
		if err != nil {
			return fmt.Errorf("metrics.listen: %w", err)
		}
		msrv := &http.Server{Handler: hc.Mux(m.Handler()), ReadHeaderTimeout: 10 * time.Second}
		go func() { _ = msrv.Serve(mlis) }()
		defer msrv.Close()
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	// The replica name first: the pool Prepare re-initialises is the claimed name's.
	if err := sink.Ping(ctx); err != nil {
		return err
	}
	c, err := sink.ClaimReplica(ctx, identity(cfg.Flight.Listen, started), func(st kafka.ReplicaStatus) {
		m.ReplicaClaimed(st.Name, st.Held)
	})
	if err != nil {
		return err
	}
	claim.Store(c)
	if err := sink.Prepare(ctx); err != nil {
		return err
	}
	srv, err := flightsink.NewServer(cfg.Flight, sink, flightsink.WithLogger(log), flightsink.WithAuth(cfg.Auth),
		flightsink.WithMetrics(m))
	if err != nil {
		return err
	}
	hc.RegisterGRPC(srv.GRPC())
	if !srv.AuthEnabled() {
		log.Warn().Str("listen", cfg.Flight.Listen).Msg("no auth configured: every client is the anonymous principal and may write to every topic")
	}
	lis, err := net.Listen("tcp", cfg.Flight.Listen)
	if err != nil {
		return fmt.Errorf("flight.listen: %w", err)
	}
	log.Info().Str("listen", lis.Addr().String()).Strs("kafka_brokers", cfg.Kafka.Brokers).Str("replica", c.Name()).
		Bool("tls", cfg.Flight.TLSCertFile != "").Bool("auth", srv.AuthEnabled()).
		Str("default_delivery", string(cfg.Flight.DefaultDelivery)).Msg("flightsink serving")

	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(lis) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	stop() // a second signal kills the process the default way
	hc.Close()
	srv.Shutdown(context.Background())
	c.Release(context.Background()) // streams have ended: the next server with this name may start at once
	log.Info().Msg("flightsink stopped")
	return <-errc
}

// identity is what this server tells others in its replica claim: the
// Flight address (the host name when it listens on every interface), host,
// pid and start time.
func identity(listen string, started time.Time) kafka.ReplicaIdentity {
	host, _ := os.Hostname()
	addr := listen
	if h, port, err := net.SplitHostPort(listen); err == nil && host != "" {
		if ip := net.ParseIP(h); h == "" || (ip != nil && ip.IsUnspecified()) {
			addr = net.JoinHostPort(host, port)
		}
	}
	return kafka.ReplicaIdentity{Address: addr, Host: host, PID: os.Getpid(), Started: started}
}

// startDevKafka starts the embedded in-memory broker for --dev.
func startDevKafka(addr string) (*kfake.Cluster, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("--dev-kafka-addr: %w", err)
	}
	var p int
	if _, err := fmt.Sscan(port, &p); err != nil {
		return nil, fmt.Errorf("--dev-kafka-addr: port %q: %w", port, err)
	}
	cluster, err := kfake.NewCluster(
		kfake.NumBrokers(1),
		kfake.Ports(p),
		kfake.ListenFn(func(network, _ string) (net.Listener, error) {
			return net.Listen(network, net.JoinHostPort(host, port))
		}),
		kfake.DefaultNumPartitions(3),
	)
	if err != nil {
		return nil, fmt.Errorf("starting the embedded dev broker on %s (is a Kafka already listening there? use --dev-kafka-addr): %w", addr, err)
	}
	return cluster, nil
}

func newLogger(c config.Log) (zerolog.Logger, error) {
	level, err := zerolog.ParseLevel(c.Level)
	if err != nil {
		return zerolog.Logger{}, fmt.Errorf("log.level: %w", err)
	}
	var log zerolog.Logger
	if c.Format == "console" {
		log = zerolog.New(zerolog.ConsoleWriter{Out: os.Stderr, TimeFormat: time.RFC3339})
	} else {
		log = zerolog.New(os.Stderr)
	}
	return log.Level(level).With().Timestamp().Logger(), nil
}
