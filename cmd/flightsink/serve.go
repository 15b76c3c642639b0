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
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/rs/zerolog"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/flightsink/flightsink/cmd/flightsink/config"
	"github.com/flightsink/flightsink/flightsink"
	"github.com/flightsink/flightsink/internal/health"
	"github.com/flightsink/flightsink/internal/metrics"
	"github.com/flightsink/flightsink/kafka"
)

// serveFlags are the flags of flightsink serve.
type serveFlags struct {
	configPath, listen, brokers, delivery, devAddr string
	dev, checkConfig                               bool
}

// serveConfig parses serve's flags and returns the configuration they and
// the environment make: defaults, then the config file, then FLIGHTSINK_*
// variables, then flags, then --dev. It is validated: nothing here touches
// the network, so a bad setting is reported as itself, never as Kafka
// being unreachable.
func serveConfig(args, environ []string) (config.Config, serveFlags, error) {
	var f serveFlags
	fl := flag.NewFlagSet("serve", flag.ContinueOnError)
	fl.StringVar(&f.configPath, "config", "", "YAML config file (default ./config.yaml if present, else built-in defaults)")
	fl.StringVar(&f.listen, "listen", "", "Flight listen address HOST:PORT (overrides flight.listen)")
	fl.StringVar(&f.brokers, "brokers", "", "comma-separated Kafka brokers (overrides kafka.brokers)")
	fl.StringVar(&f.delivery, "delivery", "", "default delivery: at_least_once or exactly_once (overrides flight.default_delivery)")
	fl.BoolVar(&f.dev, "dev", false, "run an embedded in-memory Kafka-compatible broker (nothing is persisted)")
	fl.StringVar(&f.devAddr, "dev-kafka-addr", "127.0.0.1:9092", "address of the embedded broker with --dev")
	fl.BoolVar(&f.checkConfig, "check-config", false, "validate the configuration (file, environment, flags) and exit: 0 if it is valid, 1 with the error; touches no network")
	if err := fl.Parse(args); err != nil {
		return config.Config{}, f, err
	}
	path := f.configPath
	if path == "" {
		if _, err := os.Stat("config.yaml"); err == nil {
			path = "config.yaml"
		} else if !errors.Is(err, fs.ErrNotExist) {
			return config.Config{}, f, err
		}
	}
	cfg, err := config.Load(path, environ)
	if err != nil {
		return cfg, f, err
	}
	if f.listen != "" {
		cfg.Flight.Listen = f.listen
	}
	if f.brokers != "" {
		cfg.Kafka.Brokers = strings.Split(f.brokers, ",")
	}
	if f.delivery != "" {
		cfg.Flight.DefaultDelivery = flightsink.Delivery(f.delivery)
	}
	if f.dev {
		if _, err := devPort(f.devAddr); err != nil {
			return cfg, f, err
		}
		cfg.Kafka.Brokers = []string{f.devAddr}
		cfg.Kafka.CreateTopics = true
	}
	return cfg, f, cfg.Validate()
}

func serve(args []string) error {
	started := time.Now()
	cfg, flags, err := serveConfig(args, os.Environ())
	if err != nil {
		return err
	}
	if flags.checkConfig {
		fmt.Println("flightsink: the configuration is valid")
		return nil
	}
	log := newLogger(cfg.Log)
	if flags.dev {
		cluster, err := startDevKafka(flags.devAddr)
		if err != nil {
			return err
		}
		defer cluster.Close()
		cfg.Kafka.Brokers = cluster.ListenAddrs()
		log.Warn().Strs("kafka_brokers", cfg.Kafka.Brokers).Msg("DEV MODE: embedded in-memory Kafka-compatible broker; " +
			"NOTHING IS PERSISTED and topics are created on first use. Use --brokers or a config file for a real cluster.")
	}

	sink, err := kafka.NewSink(cfg.KafkaConfig(), log)
	if err != nil {
		return err
	}
	defer sink.Close()
	m := metrics.New()
	sink.Observe(m)
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

// devPort checks --dev-kafka-addr and returns its port.
func devPort(addr string) (int, error) {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return 0, fmt.Errorf("--dev-kafka-addr: %q must be host:port: %w", addr, err)
	}
	p, err := strconv.Atoi(port)
	if err != nil || p < 0 || p > 65535 {
		return 0, fmt.Errorf("--dev-kafka-addr: port %q is not a port number", port)
	}
	return p, nil
}

// startDevKafka starts the embedded in-memory broker for --dev.
func startDevKafka(addr string) (*kfake.Cluster, error) {
	p, err := devPort(addr)
	if err != nil {
		return nil, err
	}
	host, port, _ := net.SplitHostPort(addr)
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

// newLogger makes the logger c (validated) describes.
func newLogger(c config.Log) zerolog.Logger {
	level, err := zerolog.ParseLevel(c.Level)
	if err != nil {
		level = zerolog.InfoLevel
	}
	var log zerolog.Logger
	if c.Format == "console" {
		log = zerolog.New(zerolog.ConsoleWriter{Out: os.Stderr, TimeFormat: time.RFC3339})
	} else {
		log = zerolog.New(os.Stderr)
	}
	return log.Level(level).With().Timestamp().Logger()
}
