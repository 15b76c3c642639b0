package flightsink

import (
	"context"
	"time"

	"google.golang.org/grpc/codes"
)

// Admission: a stream needs a slot, one of flight.max_streams (and of its
// principal's max_streams). When every slot is taken a new stream waits for
// one, in no particular order, up to flight.stream_queue_timeout; at most
// flight.max_queued_streams wait at once, and the next is refused at once.
// Many Spark tasks starting together then queue for a moment instead of
// failing their job. A waiting stream has read nothing of its client: it
// costs its gRPC receive window (see the memory formula in config.yaml).

// admit takes a slot for st, waiting for one when all are taken. It
// returns errShutdown once the server is closing, ResourceExhausted
// (too_many_streams) when the wait is over or the queue is full, and the
// context's cause when the client goes away while waiting.
func (s *Server) admit(ctx context.Context, st *stream, cancel context.CancelCauseFunc) error {
	p := st.principal
	var timer *time.Timer
	queued := false
	defer func() {
		if timer != nil {
			timer.Stop()
		}
		if queued {
			s.mu.Lock()
			s.queued--
			s.mu.Unlock()
			s.metrics.StreamsQueued(-1)
		}
	}()
	for {
		s.mu.Lock()
		if s.closing {
			s.mu.Unlock()
			return errShutdown
		}
		full := s.slotsFull(p)
		if full == nil {
			s.streams[st] = cancel
			s.perPrincipal[p.Name]++
			s.streamWG.Add(1)
			s.mu.Unlock()
			return nil
		}
		if !queued && (s.cfg.StreamQueueTimeout <= 0 || s.queued >= s.cfg.MaxQueuedStreams) {
			s.mu.Unlock()
			if s.cfg.StreamQueueTimeout > 0 {
				full.Msg += "; flight.max_queued_streams streams are already waiting for a slot"
			}
			return full
		}
		if !queued {
			st.log.Info().Int("open_streams", len(s.streams)).Int("waiting", s.queued+1).
				Dur("stream_queue_timeout", s.cfg.StreamQueueTimeout).Msg("waiting for a stream slot")
			queued = true
			s.queued++
			s.metrics.StreamsQueued(1)
			timer = time.NewTimer(s.cfg.StreamQueueTimeout)
		}
		freed := s.slotFreed
		s.mu.Unlock()
		select {
		case <-freed:
		case <-timer.C:
			s.mu.Lock()
			full = s.slotsFull(p)
			s.mu.Unlock()
			if full == nil {
				continue // freed as the timer fired: try once more
			}
			full.Msg += "; waited flight.stream_queue_timeout (" + s.cfg.StreamQueueTimeout.String() + ") for a slot"
			return full
		case <-ctx.Done():
			return context.Cause(ctx)
		}
	}
}

// slotsFull reports why no slot is free for principal p, nil when one is.
// The caller holds s.mu.
func (s *Server) slotsFull(p *Principal) *Error {
	if len(s.streams) >= s.cfg.MaxStreams {
		return newError(codes.ResourceExhausted, ReasonTooManyStreams,
			"%d streams are open, the most flight.max_streams allows; retry later or on another replica", s.cfg.MaxStreams)
	}
	if m := p.maxStreams; m > 0 && s.perPrincipal[p.Name] >= m {
		return newError(codes.ResourceExhausted, ReasonTooManyStreams,
			"principal %q has %d streams open, the most auth.principals[].max_streams allows", p.Name, m)
	}
	return nil
}

// release gives st's slot back and wakes the streams waiting for one.
func (s *Server) release(st *stream) {
	s.mu.Lock()
	delete(s.streams, st)
	s.perPrincipal[st.principal.Name]--
	s.wakeWaiters()
	s.mu.Unlock()
	s.streamWG.Done()
}

// wakeWaiters wakes every stream waiting for a slot; each looks again.
// The caller holds s.mu.
func (s *Server) wakeWaiters() {
	close(s.slotFreed)
	s.slotFreed = make(chan struct{})
}
