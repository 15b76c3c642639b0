// Package flightsink is the Arrow Flight service: it parses DoPut
// descriptors, runs each stream's read loop, turns checkpoint markers into
// durable units acknowledged to the client, and maps every failure to a gRPC
// status with a machine-readable reason.
package flightsink

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/apache/arrow-go/v18/arrow/flight"
	"github.com/apache/arrow-go/v18/arrow/flight/flightsql"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/rs/zerolog"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"

	"github.com/flightsink/flightsink/internal/metrics"
)

// ProtocolVersion is the stream protocol version sent in the ready message.
const ProtocolVersion = 1

// Config is the Flight side of flightsink's configuration.
type Config struct {
	// Listen is the host:port the Flight service listens on.
	Listen string `yaml:"listen"`
	// MaxMessageBytes is the largest gRPC message (one FlightData: a record
	// batch) the server accepts. grpc-go's own default of 4 MiB rejects
	// ordinary pyarrow batches.
	MaxMessageBytes int `yaml:"max_message_bytes"`
	// DefaultDelivery is the delivery of streams whose descriptor names none.
	DefaultDelivery Delivery `yaml:"default_delivery"`
	// ShutdownGrace is how long open streams may run on after SIGTERM before
	// they are ended with Unavailable.
	ShutdownGrace time.Duration `yaml:"shutdown_grace"`
	// MaxStreams caps the streams open at once (both delivery modes); it is
	// also the size of the exactly-once producer pool.
	MaxStreams int `yaml:"max_streams"`
	// StreamQueueTimeout is how long a new stream waits for a slot when
	// MaxStreams (or its principal's max_streams) streams are open, before
	// it is refused (ResourceExhausted, too_many_streams); 0 refuses at once.
	StreamQueueTimeout time.Duration `yaml:"stream_queue_timeout"`
	// MaxQueuedStreams caps the streams waiting for a slot; the next one is
	// refused at once.
	MaxQueuedStreams int `yaml:"max_queued_streams"`
	// MaxBatchBytes caps one decoded record batch (compressed bodies can
	// expand far beyond max_message_bytes).
	MaxBatchBytes int64 `yaml:"max_batch_bytes"`
	// MaxBatchRows caps the rows of one record batch, and the length of
	// every array in it whose length costs the client nothing (null-type
	// and run-end encoded arrays): checked from the batch's header before
	// it is decoded. Memory does not grow with rows (records are built in
	// chunks), so the default is high: a whole DataFrame in one batch.
	MaxBatchRows int64 `yaml:"max_batch_rows"`
	// ReceiveWindowBytes is the gRPC flow-control window of each stream and
	// connection: how much a client may send ahead of what the server has
	// read. A fixed window (instead of gRPC's growing one, up to 16 MiB per
	// stream) keeps memory bounded per stream.
	ReceiveWindowBytes int32 `yaml:"receive_window_bytes"`
	// IdleTimeout ends a stream that sends nothing for this long.
	IdleTimeout time.Duration `yaml:"idle_timeout"`
	// PreparedStatementIdleTimeout ends a Flight SQL prepared statement
	// unused for this long (0: only the 24-hour lifetime ends it).
	PreparedStatementIdleTimeout time.Duration `yaml:"prepared_statement_idle_timeout"`
	// TLSCertFile and TLSKeyFile turn on TLS; TLSClientCAFile also requires
	// client certificates signed by that CA (mutual TLS).
	TLSCertFile     string `yaml:"tls_cert_file"`
	TLSKeyFile      string `yaml:"tls_key_file"`
	TLSClientCAFile string `yaml:"tls_client_ca_file"`
}

// DefaultConfig returns the documented defaults (see config.yaml).
func DefaultConfig() Config {
	return Config{
		Listen:             "127.0.0.1:8815",
		MaxMessageBytes:    64 << 20,
		DefaultDelivery:    ExactlyOnce,
		ShutdownGrace:      30 * time.Second,
		MaxStreams:         64,
		StreamQueueTimeout: 30 * time.Second,
		MaxQueuedStreams:   16,
		MaxBatchBytes:      256 << 20,
		MaxBatchRows:       50_000_000,
		ReceiveWindowBytes: 8 << 20,
		IdleTimeout:        5 * time.Minute,

		PreparedStatementIdleTimeout: time.Hour,
	}
}

// Validate checks every setting and names the one at fault.
func (c *Config) Validate() error {
	if _, _, err := net.SplitHostPort(c.Listen); err != nil {
		return fmt.Errorf("flight.listen: %q must be host:port: %v", c.Listen, err)
	}
	if c.MaxMessageBytes < 1<<20 || c.MaxMessageBytes > 2<<30-1 {
		return fmt.Errorf("flight.max_message_bytes: %d must be between 1 MiB and 2 GiB", c.MaxMessageBytes)
	}
	switch c.DefaultDelivery {
	case AtLeastOnce, ExactlyOnce:
	default:
		return fmt.Errorf("flight.default_delivery: %q is not one of at_least_once, exactly_once", c.DefaultDelivery)
	}
	if c.MaxStreams < 1 {
		return fmt.Errorf("flight.max_streams: %d must be at least 1", c.MaxStreams)
	}
	if c.StreamQueueTimeout < 0 {
		return fmt.Errorf("flight.stream_queue_timeout: %v must not be negative (0 refuses a stream at once when every slot is taken)", c.StreamQueueTimeout)
	}
	if c.MaxQueuedStreams < 0 {
		return fmt.Errorf("flight.max_queued_streams: %d must not be negative", c.MaxQueuedStreams)
	}
	if c.MaxBatchBytes < 1<<20 {
		return fmt.Errorf("flight.max_batch_bytes: %d must be at least 1 MiB", c.MaxBatchBytes)
	}
	if c.MaxBatchRows < 1 {
		return fmt.Errorf("flight.max_batch_rows: %d must be at least 1", c.MaxBatchRows)
	}
	if c.ReceiveWindowBytes < 64<<10 {
		return fmt.Errorf("flight.receive_window_bytes: %d must be at least 65536", c.ReceiveWindowBytes)
	}
	if c.IdleTimeout < time.Second {
		return fmt.Errorf("flight.idle_timeout: %v must be at least 1s", c.IdleTimeout)
	}
	if c.PreparedStatementIdleTimeout < 0 {
		return fmt.Errorf("flight.prepared_statement_idle_timeout: %v must not be negative (0: statements last 24h whether used or not)", c.PreparedStatementIdleTimeout)
	}
	if (c.TLSCertFile == "") != (c.TLSKeyFile == "") {
		return fmt.Errorf("flight.tls_cert_file and flight.tls_key_file: set both or neither")
	}
	if c.TLSClientCAFile != "" && c.TLSCertFile == "" {
		return fmt.Errorf("flight.tls_client_ca_file: mutual TLS needs flight.tls_cert_file and flight.tls_key_file")
	}
	if c.ShutdownGrace < 0 {
		return fmt.Errorf("flight.shutdown_grace: %v must not be negative", c.ShutdownGrace)
	}
	return nil
}

// Server is the Flight service. Create it with NewServer, run it with
// Serve, stop it with Shutdown.
type Server struct {
	flight.BaseFlightServer
	cfg  Config
	sink Kafka
	log  zerolog.Logger
	mem  memory.Allocator
	grpc *grpc.Server
	sql  flight.FlightServer // Flight SQL metadata (GetSqlInfo, GetTables) for ADBC clients

	metrics  *metrics.Metrics // nil: none
	authCfg  AuthConfig
	auth     *authenticator // nil: everyone is Anonymous
	handles  *handleSigner  // Flight SQL prepared statement handles
	grpcOpts []grpc.ServerOption

	mu           sync.Mutex
	closing      bool
	streams      map[*stream]context.CancelCauseFunc
	perPrincipal map[string]int
	queued       int           // streams waiting for a slot (admission.go)
	slotFreed    chan struct{} // closed and replaced when a slot frees
	streamWG     sync.WaitGroup
	nextID       atomic.Uint64 // numbers streams in the logs
	// cleanupWG tracks the aborts of failed streams, which run after the
	// client got its status: a client learns of a failure (a broker down,
	// say) without waiting for an abort that may itself time out.
	cleanupWG sync.WaitGroup
}

// Option configures a Server.
type Option func(*Server)

// WithAllocator sets the allocator for decoded Arrow data (tests pass a
// memory.CheckedAllocator to catch leaks).
func WithAllocator(mem memory.Allocator) Option { return func(s *Server) { s.mem = mem } }

// WithAuth sets who may connect and what each principal may write.
func WithAuth(c AuthConfig) Option { return func(s *Server) { s.authCfg = c } }

// WithGRPCOptions adds gRPC server options (tests, health services).
func WithGRPCOptions(opts ...grpc.ServerOption) Option {
	return func(s *Server) { s.grpcOpts = append(s.grpcOpts, opts...) }
}

// WithMetrics makes the server report to m.
func WithMetrics(m *metrics.Metrics) Option { return func(s *Server) { s.metrics = m } }

// WithLogger sets the server's logger.
func WithLogger(log zerolog.Logger) Option { return func(s *Server) { s.log = log } }

// errShutdown is the cause of streams ended by Shutdown.
var errShutdown = &Error{Code: codes.Unavailable, Reason: ReasonShutdown,
	Msg: "the server is shutting down; reconnect (to another replica) and resume"}

// NewServer builds the Flight service over a Kafka sink.
func NewServer(cfg Config, sink Kafka, opts ...Option) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	s := &Server{cfg: cfg, sink: sink, log: zerolog.Nop(), mem: memory.DefaultAllocator,
		streams: map[*stream]context.CancelCauseFunc{}, perPrincipal: map[string]int{}, slotFreed: make(chan struct{})}
	for _, o := range opts {
		o(s)
	}
	var err error
	if s.auth, err = newAuthenticator(s.authCfg, cfg, s.log, s.metrics); err != nil {
		return nil, err
	}
	if err := checkAnonymous(s.auth != nil, s.authCfg, cfg); err != nil {
		return nil, err
	}
	gopts := append([]grpc.ServerOption{grpc.MaxRecvMsgSize(cfg.MaxMessageBytes),
		grpc.InitialWindowSize(cfg.ReceiveWindowBytes), grpc.InitialConnWindowSize(cfg.ReceiveWindowBytes),
		grpc.ChainUnaryInterceptor(s.unaryErrors), grpc.ChainStreamInterceptor(s.streamErrors),
		grpc.ForceServerCodecV2(newFlightDataCodec())}, s.grpcOpts...)
	if cfg.TLSCertFile != "" {
		creds, err := serverTLS(cfg)
		if err != nil {
			return nil, err
		}
		gopts = append(gopts, grpc.Creds(creds))
	}
	if s.auth != nil {
		gopts = append(gopts, grpc.ChainUnaryInterceptor(s.auth.unary), grpc.ChainStreamInterceptor(s.auth.stream))
	}
	s.handles = newHandleSigner(s.auth, cfg.PreparedStatementIdleTimeout)
	s.sql = flightsql.NewFlightServerWithAllocator(newSQLService(sink, s.mem, s.handles), s.mem)
	s.grpc = grpc.NewServer(gopts...)
	flight.RegisterFlightServiceServer(s.grpc, s)
	return s, nil
}

// CheckConfig reports what NewServer would refuse in cfg and auth (a bad
// setting, a secret that does not resolve, a TLS file that does not load,
// credentials or their absence on a listener other hosts reach) without
// listening or touching Kafka, so the binary refuses a bad configuration
// before its first network call; errors name the setting.
func CheckConfig(cfg Config, auth AuthConfig) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	a, err := buildAuthenticator(auth, cfg, nil)
	if err != nil {
		return err
	}
	if err := checkAnonymous(a != nil, auth, cfg); err != nil {
		return err
	}
	if cfg.TLSCertFile != "" {
		if _, err := serverTLS(cfg); err != nil {
			return err
		}
	}
	return nil
}

// checkAnonymous refuses a listener other hosts reach when no credentials
// are configured, unless auth.allow_anonymous says that is intended.
func checkAnonymous(authEnabled bool, auth AuthConfig, cfg Config) error {
	if !authEnabled && !auth.AllowAnonymous && !isLoopback(cfg.Listen) {
		return fmt.Errorf("flight.listen: %s is reachable from other hosts but no auth is configured; "+
			"configure auth.tokens or auth.users, or set auth.allow_anonymous: true if anyone who can reach it may write", cfg.Listen)
	}
	return nil
}

// GRPC is the server's gRPC server, to register more services (health).
func (s *Server) GRPC() *grpc.Server { return s.grpc }

// AuthEnabled reports whether clients must authenticate.
func (s *Server) AuthEnabled() bool { return s.auth != nil }

// isLoopback reports whether a listen address only accepts local clients.
func isLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// serverTLS loads the certificate and, for mutual TLS, the client CA.
func serverTLS(cfg Config) (credentials.TransportCredentials, error) {
	cert, err := tls.LoadX509KeyPair(cfg.TLSCertFile, cfg.TLSKeyFile)
	if err != nil {
		return nil, fmt.Errorf("flight.tls_cert_file / flight.tls_key_file: %w", err)
	}
	tc := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	if cfg.TLSClientCAFile != "" {
		pem, err := os.ReadFile(cfg.TLSClientCAFile)
		if err != nil {
			return nil, fmt.Errorf("flight.tls_client_ca_file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("flight.tls_client_ca_file: no PEM certificate in %s", cfg.TLSClientCAFile)
		}
		tc.ClientCAs, tc.ClientAuth = pool, tls.RequireAndVerifyClientCert
	}
	return credentials.NewTLS(tc), nil
}

// Serve accepts connections on lis until Shutdown; it returns nil after a
// Shutdown.
func (s *Server) Serve(lis net.Listener) error {
	err := s.grpc.Serve(lis)
	if errors.Is(err, grpc.ErrServerStopped) {
		return nil
	}
	return err
}

// Shutdown stops taking new streams, lets open ones finish for the
// configured grace period (or until ctx ends), then ends the rest with
// Unavailable and waits for them to clean up.
func (s *Server) Shutdown(ctx context.Context) {
	s.mu.Lock()
	s.closing = true
	s.wakeWaiters() // waiting streams end with errShutdown
	open := len(s.streams)
	s.mu.Unlock()
	s.log.Info().Int("open_streams", open).Dur("grace", s.cfg.ShutdownGrace).Msg("shutting down: no new streams")

	stopped := make(chan struct{})
	go func() { s.grpc.GracefulStop(); close(stopped) }()
	grace := time.NewTimer(s.cfg.ShutdownGrace)
	defer grace.Stop()
	select {
	case <-stopped:
		s.cleanupWG.Wait()
		return
	case <-grace.C:
	case <-ctx.Done():
	}
	s.mu.Lock()
	for _, cancel := range s.streams {
		cancel(errShutdown)
	}
	s.mu.Unlock()
	s.streamWG.Wait()
	s.cleanupWG.Wait()
	select {
	case <-stopped:
	case <-time.After(5 * time.Second):
		s.grpc.Stop()
		<-stopped
	}
}

// ActiveStreams is the number of DoPut streams open right now.
func (s *Server) ActiveStreams() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.streams)
}

// WaitingStreams is the number of streams waiting for a slot right now.
func (s *Server) WaitingStreams() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.queued
}

// DoPut runs one stream.
func (s *Server) DoPut(grpcStream flight.FlightService_DoPutServer) error {
	ctx, cancel := context.WithCancelCause(grpcStream.Context())
	defer cancel(nil)
	start := time.Now()
	id := s.nextID.Add(1)
	st := &stream{srv: s, ctx: ctx, cancel: cancel, grpc: grpcStream, log: s.log.With().Uint64("stream", id).Logger()}
	if p, ok := peer.FromContext(grpcStream.Context()); ok {
		st.log = st.log.With().Str("peer", p.Addr.String()).Logger()
	}

	principal := PrincipalFromContext(ctx)
	st.principal = principal
	if !principal.anonymous {
		st.log = st.log.With().Str("principal", principal.Name).Logger()
	}
	if err := s.admit(ctx, st, cancel); err != nil {
		return s.toStatus(grpcStream, st, err)
	}
	defer s.release(st)

	st.acks = newAcker(grpcStream.Send)
	err := st.runSafely()
	if err != nil && st.ckpt.w != nil {
		s.cleanupWG.Add(1)
		go func() {
			defer s.cleanupWG.Done()
			st.abandon()
		}()
	}
	st.acks.Stop()
	st.reportOutcome(err)
	if err == nil {
		st.log.Info().Str("delivery", string(st.delivery)).Int64("rows", st.ckpt.durableRows).
			Int64("batches", st.batches).Int64("last_checkpoint", st.ckpt.lastCheckpoint).
			Dur("duration", time.Since(start)).Msg("stream done")
		return nil
	}
	return s.toStatus(grpcStream, st, err)
}

// runSafely turns a panic in decoding (malformed client input that got past
// validation) into an error instead of taking the server down.
func (st *stream) runSafely() (err error) {
	defer func() {
		if r := recover(); r != nil {
			st.log.Error().Interface("panic", r).Bytes("stack", debug.Stack()).Msg("stream panicked")
			err = &Error{Code: codes.Internal, Reason: ReasonInternal, Msg: fmt.Sprintf("internal error: %v", r)}
		}
	}()
	return st.run()
}

// toStatus classifies a stream's error and logs it; the message will end
// with what is durable. streamErrors, the mapper of every RPC, turns it into
// the status and sets the reason trailer.
func (s *Server) toStatus(_ flight.FlightService_DoPutServer, st *stream, err error) error {
	if cause := context.Cause(st.ctx); cause != nil && errors.Is(err, context.Canceled) {
		err = cause
	}
	c := classify(err)
	e := &Error{Code: c.Code, Reason: c.Reason, Msg: boundMessage(c.Msg, maxStatusMessage), Err: err, suffix: st.suffix()}
	ev := st.log.Warn()
	if e.Code == codes.Internal {
		ev = st.log.Error()
	}
	ev.Str("code", e.Code.String()).Str("reason", string(e.Reason)).Int64("durable_rows", st.ckpt.durableRows).
		Int64("rows_received", st.rows).Msg("stream failed: " + e.Msg)
	return e
}

// GetFlightInfo serves Flight SQL metadata commands (GetSqlInfo, GetTables).
func (s *Server) GetFlightInfo(ctx context.Context, fd *flight.FlightDescriptor) (*flight.FlightInfo, error) {
	return s.sql.GetFlightInfo(ctx, fd)
}

// GetSchema serves Flight SQL metadata commands.
func (s *Server) GetSchema(ctx context.Context, fd *flight.FlightDescriptor) (*flight.SchemaResult, error) {
	return s.sql.GetSchema(ctx, fd)
}

// DoGet serves the tickets GetFlightInfo hands out.
func (s *Server) DoGet(t *flight.Ticket, stream flight.FlightService_DoGetServer) error {
	return s.sql.DoGet(t, stream)
}
