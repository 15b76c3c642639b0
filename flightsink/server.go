// Package flightsink is the Arrow Flight service: it parses DoPut
// descriptors, runs each stream's read loop, turns checkpoint markers into
// durable units acknowledged to the client, and maps every failure to a gRPC
// status with a machine-readable reason.
package flightsink

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/apache/arrow-go/v18/arrow/flight"
	"github.com/apache/arrow-go/v18/arrow/flight/flightsql"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/rs/zerolog"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	"github.com/flightsink/flightsink/kafka"
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
}

// DefaultConfig returns the documented defaults (see config.yaml).
func DefaultConfig() Config {
	return Config{
		Listen:          "127.0.0.1:8815",
		MaxMessageBytes: 64 << 20,
		DefaultDelivery: ExactlyOnce,
		ShutdownGrace:   30 * time.Second,
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
	sink *kafka.Sink
	log  zerolog.Logger
	mem  memory.Allocator
	grpc *grpc.Server
	sql  flight.FlightServer // Flight SQL metadata (GetSqlInfo, GetTables) for ADBC clients

	mu       sync.Mutex
	closing  bool
	streams  map[*stream]context.CancelCauseFunc
	streamWG sync.WaitGroup
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

// WithLogger sets the server's logger.
func WithLogger(log zerolog.Logger) Option { return func(s *Server) { s.log = log } }

// errShutdown is the cause of streams ended by Shutdown.
var errShutdown = &Error{Code: codes.Unavailable, Reason: ReasonShutdown,
	Msg: "the server is shutting down; reconnect (to another replica) and resume"}

// NewServer builds the Flight service over a Kafka sink.
func NewServer(cfg Config, sink *kafka.Sink, opts ...Option) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	s := &Server{cfg: cfg, sink: sink, log: zerolog.Nop(), mem: memory.DefaultAllocator,
		streams: map[*stream]context.CancelCauseFunc{}}
	for _, o := range opts {
		o(s)
	}
	s.sql = flightsql.NewFlightServerWithAllocator(newSQLService(sink, s.mem), s.mem)
	s.grpc = grpc.NewServer(grpc.MaxRecvMsgSize(cfg.MaxMessageBytes))
	flight.RegisterFlightServiceServer(s.grpc, s)
	return s, nil
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

// DoPut runs one stream.
func (s *Server) DoPut(grpcStream flight.FlightService_DoPutServer) error {
	ctx, cancel := context.WithCancelCause(grpcStream.Context())
	defer cancel(nil)
	start := time.Now()
	st := &stream{srv: s, ctx: ctx, grpc: grpcStream, log: s.log}
	if p, ok := peer.FromContext(grpcStream.Context()); ok {
		st.log = st.log.With().Str("peer", p.Addr.String()).Logger()
	}

	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		return s.toStatus(grpcStream, st, errShutdown)
	}
	s.streams[st] = cancel
	s.streamWG.Add(1)
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.streams, st)
		s.mu.Unlock()
		s.streamWG.Done()
	}()

	st.acks = newAcker(grpcStream.Send)
	err := st.runSafely()
	if err != nil && st.writer != nil {
		s.cleanupWG.Add(1)
		go func() {
			defer s.cleanupWG.Done()
			st.abandon()
		}()
	}
	st.acks.Stop()
	if err == nil {
		st.log.Info().Str("delivery", string(st.delivery)).Int64("rows", st.durableRows).
			Int64("batches", st.batches).Int64("last_checkpoint", st.lastCheckpoint).
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
			st.log.Error().Interface("panic", r).Msg("stream panicked")
			err = &Error{Code: codes.Internal, Reason: ReasonInternal, Msg: fmt.Sprintf("internal error: %v", r)}
		}
	}()
	return st.run()
}

// toStatus is the one place where a stream's error becomes a gRPC status:
// the message says what is durable and the trailer carries the reason.
func (s *Server) toStatus(grpcStream flight.FlightService_DoPutServer, st *stream, err error) error {
	if cause := context.Cause(st.ctx); cause != nil && errors.Is(err, context.Canceled) {
		err = cause
	}
	e := classify(err)
	grpcStream.SetTrailer(metadata.Pairs(TrailerReason, string(e.Reason)))
	ev := st.log.Warn()
	if e.Code == codes.Internal {
		ev = st.log.Error()
	}
	ev.Str("code", e.Code.String()).Str("reason", string(e.Reason)).Int64("durable_rows", st.durableRows).
		Int64("rows_received", st.rows).Msg("stream failed: " + e.Msg)
	return status.Error(e.Code, e.Msg+st.suffix())
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
