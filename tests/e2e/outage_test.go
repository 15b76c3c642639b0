package e2e

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow/flight"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	client "github.com/flightsink/flightsink/clients/go/fsclient"
	"github.com/flightsink/flightsink/internal/kafkatest"
)

// TestKafkaDownAtOpen: with the broker stopped and the server up, opening a
// stream (at-least-once, anonymous exactly-once, a named writer) and asking
// for a writer's status fail with Unavailable, reason kafka_unavailable,
// which clients retry, instead of a final INTERNAL kafka_error. A resumable
// upload that retries while the error says so completes once the broker is
// back, with every row in Kafka exactly once.
func TestKafkaDownAtOpen(t *testing.T) {
	t.Parallel() // a broker of its own: see the package doc
	brokers, stopBroker, startBroker := privateBroker(t)
	topic := kafkatest.TopicName(t)
	kafkatest.CreateTopic(t, brokers, topic, 2, nil)
	srv := startServer(t, serverConfig{brokers: brokers, replica: "outage", prefix: uniquePrefix(t),
		env: []string{"FLIGHTSINK_KAFKA_PRODUCE_TIMEOUT=5s"}})
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	writer := "outage-" + topic

	c, err := client.Dial(srv.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	stopBroker()

	for _, d := range []client.Descriptor{
		{Topic: topic, KeyField: "key", Delivery: "at_least_once"},
		{Topic: topic, KeyField: "key", Delivery: "exactly_once"},
		{Topic: topic, KeyField: "key", Delivery: "exactly_once", WriterID: writer},
	} {
		_, err := c.Open(ctx, d, rowSchema)
		var fe *client.Error
		if !errors.As(err, &fe) || fe.Code != codes.Unavailable || fe.Reason != "kafka_unavailable" || !fe.Retryable() {
			t.Fatalf("opening %+v with the broker down: %v; want a retryable Unavailable (kafka_unavailable)", d, err)
		}
		t.Logf("open %s/%q with the broker down: %v", d.Delivery, d.WriterID, fe)
	}

	conn, err := grpc.NewClient(srv.addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	action, err := flight.NewFlightServiceClient(conn).DoAction(ctx, &flight.Action{Type: "writer-status", Body: []byte(`{"writer_id":"` + writer + `"}`)})
	if err == nil {
		_, err = action.Recv()
	}
	reason := action.Trailer().Get("flightsink-reason")
	if status.Code(err) != codes.Unavailable || len(reason) != 1 || reason[0] != "kafka_unavailable" {
		t.Fatalf("writer-status with the broker down: %v, reason %v; want Unavailable, kafka_unavailable", err, reason)
	}

	// The upload retries for as long as the error is retryable; the broker
	// comes back after its first failure.
	type result struct {
		done     client.Done
		err      error
		attempts int
	}
	failed := make(chan struct{})
	finished := make(chan result, 1)
	go func() {
		for attempt := 1; ; attempt++ {
			done, err := upload(ctx, srv.addr, topic, writer, 3000, 500, 1000, nil)
			var fe *client.Error
			if err == nil || !errors.As(err, &fe) || !fe.Retryable() || attempt == 200 {
				finished <- result{done, err, attempt}
				return
			}
			if attempt == 1 {
				close(failed)
			}
			select {
			case <-ctx.Done():
			case <-time.After(500 * time.Millisecond):
			}
		}
	}()
	select {
	case <-failed:
	case r := <-finished:
		t.Fatalf("the upload ended with the broker down: %v after %d attempts; want retryable failures", r.err, r.attempts)
	}
	startBroker()
	r := <-finished
	if r.err != nil {
		t.Fatalf("upload after %d attempts: %v", r.attempts, r.err)
	}
	if r.done.CommittedRows != 3000 {
		t.Fatalf("done %+v, want 3000 committed rows", r.done)
	}
	t.Logf("the upload completed after %d attempts", r.attempts)
	checkExactlyOnce(t, brokers, topic, 3000)
}
