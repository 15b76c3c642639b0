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

	"github.com/flightsink/flightsink/cmd/flightsink/config"
	"github.com/flightsink/flightsink/cmd/flightsink/health"
	"github.com/flightsink/flightsink/flightsink"
	"github.com/flightsink/flightsink/internal/metrics"
	"github.com/flightsink/flightsink/kafka"
)

// serveFlags are the flags of flightsink serve.
type serveFlags struct {
	configPath, listen, brokers, delivery, devAddr, metricsListen string
	dev, checkConfig                                              bool
	set                                                           map[string]bool // the flags given
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
	fl.StringVar(&f.metricsListen, "metrics-listen", "", `metrics, /healthz and /readyz listen address HOST:PORT, "" for none (overrides metrics.listen)`)
	fl.BoolVar(&f.checkConfig, "check-config", false, "validate the configuration (file, environment, flags) and exit: 0 if it is valid, 1 with the error; touches no network")
	fl.Usage = func() {
		fmt.Fprint(fl.Output(), "usage: flightsink serve [flags]\n\nServes Arrow Flight DoPut streams into Kafka. Settings: defaults < config file < FLIGHTSINK_* variables < flags\n(config.yaml documents each one and its variable).\n\n")
		fl.PrintDefaults()
	}
	if err := fl.Parse(args); err != nil {
		return config.Config{}, f, err
	}
	if fl.NArg() > 0 {
		return config.Config{}, f, fmt.Errorf("serve takes no arguments, only flags: %q (flightsink serve --help)", fl.Arg(0))
	}
	f.set = map[string]bool{}
	fl.Visit(func(fl *flag.Flag) { f.set[fl.Name] = true })
	if f.dev && f.set["brokers"] {
		return config.Config{}, f, errors.New("--dev runs its own in-memory broker: drop --brokers, or --dev to use those brokers")
	}
	if f.set["dev-kafka-addr"] && !f.dev {
		return config.Config{}, f, errors.New("--dev-kafka-addr is the address of --dev's broker: add --dev, or drop it")
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
	if f.set["metrics-listen"] {
		cfg.Metrics.Listen = f.metricsListen
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
	sig := newSignals()
	defer sig.stop()
	ctx := sig.first // start-up ends at the first signal

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
	metricsAddr := ""
	if cfg.Metrics.Listen != "" { // up before Kafka is, so /healthz answers during start-up
		mlis, err := net.Listen("tcp", cfg.Metrics.Listen)
		if err != nil {
			return fmt.Errorf("metrics.listen: %w", err)
		}
		metricsAddr = mlis.Addr().String()
		msrv := &http.Server{Handler: hc.Mux(m.Handler()), ReadHeaderTimeout: 10 * time.Second}
		go func() { _ = msrv.Serve(mlis) }()
		defer msrv.Close()
	}
	// The replica name first: the pool Prepare re-initialises is the claimed name's.
	if err := waitForKafka(ctx, sink.Ping, cfg.Kafka.StartupTimeout, log, newBackoff()); err != nil {
		return err
	}
	var c *kafka.ReplicaClaim
	if err := retryUnavailable(ctx, "claiming the replica name", func(ctx context.Context) (err error) {
		c, err = sink.ClaimReplica(ctx, identity(cfg.Flight.Listen, started), func(st kafka.ReplicaStatus) {
			m.ReplicaClaimed(st.Name, st.Held)
		})
		return err
	}, cfg.Kafka.StartupTimeout, log, newBackoff()); err != nil {
		return err
	}
	claim.Store(c)
	if err := retryUnavailable(ctx, "preparing the exactly-once producers", sink.Prepare, cfg.Kafka.StartupTimeout, log, newBackoff()); err != nil {
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
	brokers := cfg.Kafka.Brokers
	if applied, _, err := cfg.KafkaConfig().ApplyClientConfig(); err == nil { // kafka.client_config's bootstrap.servers
		brokers = applied.Brokers
	}
	serving := log.Info().Str("listen", lis.Addr().String()).Strs("kafka_brokers", brokers).Str("replica", c.Name()).
		Bool("tls", cfg.Flight.TLSCertFile != "").Bool("auth", srv.AuthEnabled()).
		Str("default_delivery", string(cfg.Flight.DefaultDelivery))
	if metricsAddr != "" {
		serving = serving.Str("metrics", "http://"+metricsAddr+"/metrics")
	} else {
		serving = serving.Str("metrics", "off (metrics.listen is empty)")
	}
	serving.Msg("flightsink serving")

	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(lis) }()
	select {
	case err := <-errc:
		return err
	case <-sig.first.Done():
	}
	log.Info().Int("open_streams", srv.ActiveStreams()).Stringer("grace", cfg.Flight.ShutdownGrace).
		Msg("stopping: open streams may finish within flight.shutdown_grace; a second SIGINT or SIGTERM (Ctrl-C) ends them now")
	hc.Close()
	srv.Shutdown(sig.second)        // a second signal ends the grace: open streams end with reason shutdown, their transactions aborted
	c.Release(context.Background()) // streams have ended: the next server with this name may start at once
	log.Info().Msg("flightsink stopped")
	return <-errc
}

// signals turns SIGINT and SIGTERM into two contexts: first ends at the
// first signal (stop taking streams, let open ones finish), second at the
// next one (end them now). After the second, the signals' default action
// (exit) is back, so a third one kills the process.
type signals struct {
	first, second context.Context
	stop          func()
}

func newSignals() *signals {
	ch := make(chan os.Signal, 2)
	signal.Notify(ch, syscall.SIGINT, syscall.SIGTERM)
	first, cancelFirst := context.WithCancel(context.Background())
	second, cancelSecond := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer signal.Stop(ch)
		for _, cancel := range []context.CancelFunc{cancelFirst, cancelSecond} {
			select {
			case <-ch:
				cancel()
			case <-done:
				return
			}
		}
	}()
	return &signals{first: first, second: second, stop: func() {
		close(done)
		cancelFirst()
		cancelSecond()
	}}
}
