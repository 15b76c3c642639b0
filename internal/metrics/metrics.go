// Package metrics is flightsink's Prometheus instrumentation. A Metrics owns
// its own prometheus.Registry (no global state), so every server, and every
// test, gets an independent set; Handler serves it in the Prometheus text
// format on the metrics listener (/metrics).
//
// Every method is safe for concurrent use and cheap enough for the stream hot
// path when called once per record batch (not once per row). A nil *Metrics
// is valid: every method is a no-op, so code paths without metrics need no
// checks.
//
// Exported series (all prefixed flightsink_):
//
//	streams_open{delivery}                      gauge    streams open right now
//	streams_total{delivery,kind,outcome}        counter  streams ended; outcome "ok" or the error reason
//	rows_received_total                         counter  rows read from clients
//	bytes_received_total                        counter  Arrow bytes of the record batches read
//	records_produced_total{topic}               counter  records handed to Kafka
//	record_bytes_produced_total{topic}          counter  record value bytes handed to Kafka
//	transactions_total{outcome}                 counter  committed / aborted transactions
//	checkpoint_commit_seconds                   histogram exactly-once commit latency
//	checkpoint_seconds{delivery}                histogram time for a checkpoint to become durable
//	produce_errors_total{code}                  counter  produce errors by Kafka error name (or "timeout")
//	producer_buffered_bytes                     gauge    bytes buffered in producers, not yet acknowledged
//	auth_failures_total{reason}                 counter  refused authentications, by AuthReasons
//	replica_claimed{replica}                    gauge    1 while the server holds its claimed replica name, else 0
//
// plus the Go runtime (go_*) and process (process_*) collectors.
package metrics

import (
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Stream kinds, the kind label of flightsink_streams_total.
const (
	KindDoPut  = "doput"            // a flightsink DoPut stream (JSON or PATH descriptor)
	KindIngest = "flightsql_ingest" // a Flight SQL CommandStatementIngest
)

// OutcomeOK is the outcome of a stream that ended cleanly; a failed stream's
// outcome is its flightsink-reason (bad_row, fenced, ...).
const OutcomeOK = "ok"

// MaxTopicLabels bounds the distinct values of the topic label. Topics past
// this many are counted under OtherTopic, so a client that writes to many
// topics (kafka.create_topics on) cannot grow the exposition without bound.
const MaxTopicLabels = 1000

// OtherTopic is the topic label of topics beyond MaxTopicLabels.
const OtherTopic = "_other"

// UnknownDelivery is the delivery label used when the caller passes "" (a
// stream that failed before its delivery was known).
const UnknownDelivery = "unknown"

// Reasons of a refused authentication, the reason label of
// flightsink_auth_failures_total.
const (
	AuthMissingCredentials = "missing_credentials" // no (or no usable) authorization header or client certificate
	AuthInvalidToken       = "invalid_token"       // a bearer token that is neither configured nor a valid session
	AuthExpiredSession     = "expired_session"     // a session token past auth.session_ttl
	AuthUnknownUser        = "unknown_user"        // a handshake for a username not in auth.users
	AuthBadPassword        = "bad_password"        // a handshake with a known user's wrong password
	AuthMalformed          = "malformed"           // a handshake without well-formed basic credentials
	AuthBadCertificate     = "bad_certificate"     // a client certificate naming no (or several) principals
	AuthRateLimited        = "rate_limited"        // refused unchecked: the peer failed auth.max_failures times
)

// AuthReasons are every reason label of flightsink_auth_failures_total.
var AuthReasons = []string{AuthMissingCredentials, AuthInvalidToken, AuthExpiredSession, AuthUnknownUser,
	AuthBadPassword, AuthMalformed, AuthBadCertificate, AuthRateLimited}

// commitBuckets spans 1 ms to 10 s, the range of Kafka commit and
// acks=all latencies from a healthy local cluster to a struggling one.
var commitBuckets = []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}

// Metrics is one server's set of metrics on its own registry. Create it with
// New; the zero value is not usable, but a nil *Metrics is (a no-op).
type Metrics struct {
	reg *prometheus.Registry

	streamsOpen      *prometheus.GaugeVec
	streamsTotal     *prometheus.CounterVec
	rowsReceived     prometheus.Counter
	bytesReceived    prometheus.Counter
	recordsProduced  *prometheus.CounterVec
	recordBytes      *prometheus.CounterVec
	txnCommitted     prometheus.Counter
	txnAborted       prometheus.Counter
	commitSeconds    prometheus.Histogram
	checkpointSecs   *prometheus.HistogramVec
	produceErrors    *prometheus.CounterVec
	bufferedBytes    prometheus.Gauge
	streamsQueued    prometheus.Gauge
	authFailures     *prometheus.CounterVec
	replicaClaimed   *prometheus.GaugeVec
	topicsMu         sync.RWMutex
	topics           map[string]topicCounters
	overflowCounters topicCounters
}

// topicCounters caches one topic's children so the per-batch call is a map
// read under a read lock, not a label hash.
type topicCounters struct {
	records, bytes prometheus.Counter
}

// New returns a Metrics on a fresh registry holding flightsink's metrics
// plus the Go runtime and process collectors.
func New() *Metrics {
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		streamsOpen: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "flightsink_streams_open",
			Help: "Streams (DoPut and Flight SQL ingest) open right now, by delivery.",
		}, []string{"delivery"}),
		streamsTotal: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "flightsink_streams_total",
			Help: `Streams ended, by delivery, kind (doput, flightsql_ingest) and outcome ("ok" or the flightsink-reason of the failure).`,
		}, []string{"delivery", "kind", "outcome"}),
		rowsReceived: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "flightsink_rows_received_total",
			Help: "Rows read from clients.",
		}),
		bytesReceived: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "flightsink_bytes_received_total",
			Help: "Arrow bytes of the record batches read from clients.",
		}),
		recordsProduced: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "flightsink_records_produced_total",
			Help: "Kafka records handed to a producer, by topic (topics beyond the first 1000 count as _other).",
		}, []string{"topic"}),
		recordBytes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "flightsink_record_bytes_produced_total",
			Help: "Kafka record bytes (keys, values and headers) handed to a producer, by the stream's topic (rows routed by topic_field count under it; topics beyond the first 1000 count as _other).",
		}, []string{"topic"}),
		commitSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "flightsink_checkpoint_commit_seconds",
			Help:    "Latency of exactly-once transaction commits (checkpoints and clean ends).",
			Buckets: commitBuckets,
		}),
		checkpointSecs: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "flightsink_checkpoint_seconds",
			Help:    "Time for a checkpoint to become durable (exactly-once: the commit; at-least-once: waiting for acks=all), by delivery.",
			Buckets: commitBuckets,
		}, []string{"delivery"}),
		produceErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "flightsink_produce_errors_total",
			Help: `Kafka produce errors, by code (the Kafka error name, or "timeout").`,
		}, []string{"code"}),
		bufferedBytes: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "flightsink_producer_buffered_bytes",
			Help: "Bytes handed to Kafka producers and not yet acknowledged (bounded by kafka.max_buffered_bytes per producer).",
		}),
		streamsQueued: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "flightsink_streams_waiting",
			Help: "Streams waiting for a slot: flight.max_streams (or their principal's max_streams) streams are open; they wait up to flight.stream_queue_timeout.",
		}),
		authFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "flightsink_auth_failures_total",
			Help: "Refused authentications, by reason (missing_credentials, invalid_token, expired_session, unknown_user, " +
				"bad_password, malformed, bad_certificate, rate_limited).",
		}, []string{"reason"}),
		replicaClaimed: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "flightsink_replica_claimed",
			Help: "1 while this server holds its replica name (kafka.replica, or the kafka.replica_slots name it claimed), 0 once it lost it or could not renew it; the replica label is the name.",
		}, []string{"replica"}),
		topics: map[string]topicCounters{},
	}
	txns := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "flightsink_transactions_total",
		Help: "Kafka transactions ended, by outcome (committed, aborted).",
	}, []string{"outcome"})
	m.txnCommitted = txns.WithLabelValues("committed")
	m.txnAborted = txns.WithLabelValues("aborted")
	m.overflowCounters = topicCounters{
		records: m.recordsProduced.WithLabelValues(OtherTopic),
		bytes:   m.recordBytes.WithLabelValues(OtherTopic),
	}
	// Both delivery modes exist from the start, so dashboards see 0, not no data.
	for _, d := range []string{"exactly_once", "at_least_once"} {
		m.streamsOpen.WithLabelValues(d)
	}
	for _, r := range AuthReasons {
		m.authFailures.WithLabelValues(r)
	}
	m.reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		m.streamsOpen, m.streamsTotal, m.rowsReceived, m.bytesReceived,
		m.recordsProduced, m.recordBytes, txns, m.commitSeconds, m.checkpointSecs,
		m.produceErrors, m.bufferedBytes, m.streamsQueued, m.authFailures, m.replicaClaimed,
	)
	return m
}

// Registry is the registry the metrics live on, for registering more
// collectors (e.g. Kafka client hooks) next to them. Nil on a nil Metrics.
func (m *Metrics) Registry() *prometheus.Registry {
	if m == nil {
		return nil
	}
	return m.reg
}

// Handler serves the registry in the Prometheus exposition format. On a nil
// Metrics it answers 404.
func (m *Metrics) Handler() http.Handler {
	if m == nil {
		return http.NotFoundHandler()
	}
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError})
}

func delivery(d string) string {
	if d == "" {
		return UnknownDelivery
	}
	return d
}

// StreamOpened counts a stream as open once its delivery is known. kind is
// KindDoPut or KindIngest (recorded when the stream closes). Every call must
// be matched by one StreamClosed with the same delivery.
func (m *Metrics) StreamOpened(deliveryMode, kind string) {
	if m == nil {
		return
	}
	m.streamsOpen.WithLabelValues(delivery(deliveryMode)).Inc()
}

// StreamClosed ends a stream counted by StreamOpened: streams_open{delivery}
// goes down and streams_total{delivery,kind,outcome} up. outcome is OutcomeOK
// or the failure's flightsink-reason (bad_row, fenced, client_gone, ...).
func (m *Metrics) StreamClosed(deliveryMode, kind, outcome string) {
	if m == nil {
		return
	}
	d := delivery(deliveryMode)
	m.streamsOpen.WithLabelValues(d).Dec()
	m.streamsTotal.WithLabelValues(d, kind, outcome).Inc()
}

// StreamRejected counts a stream that failed before StreamOpened (e.g. a bad
// descriptor, so its delivery is not known): streams_total only, delivery
// "unknown" when deliveryMode is "".
func (m *Metrics) StreamRejected(deliveryMode, kind, outcome string) {
	if m == nil {
		return
	}
	m.streamsTotal.WithLabelValues(delivery(deliveryMode), kind, outcome).Inc()
}

// BatchIn counts one record batch read from a client: its rows and its Arrow
// bytes (the sum of its buffers' sizes).
func (m *Metrics) BatchIn(rows, bytes int64) {
	if m == nil {
		return
	}
	m.rowsReceived.Add(float64(rows))
	m.bytesReceived.Add(float64(bytes))
}

// RecordsProduced counts records (and their value bytes) handed to Kafka for
// topic; call it once per batch with the batch's totals.
//
// Cardinality: the topic label has one series per topic written to. That is
// normally a handful, but with kafka.create_topics on a client can name any
// number of topics, so only the first MaxTopicLabels distinct topics get their
// own series; later ones are counted under topic="_other".
func (m *Metrics) RecordsProduced(topic string, records, valueBytes int64) {
	if m == nil {
		return
	}
	c := m.topic(topic)
	c.records.Add(float64(records))
	c.bytes.Add(float64(valueBytes))
}

func (m *Metrics) topic(topic string) topicCounters {
	m.topicsMu.RLock()
	c, ok := m.topics[topic]
	m.topicsMu.RUnlock()
	if ok {
		return c
	}
	m.topicsMu.Lock()
	defer m.topicsMu.Unlock()
	if c, ok := m.topics[topic]; ok {
		return c
	}
	if len(m.topics) >= MaxTopicLabels {
		return m.overflowCounters
	}
	c = topicCounters{
		records: m.recordsProduced.WithLabelValues(topic),
		bytes:   m.recordBytes.WithLabelValues(topic),
	}
	m.topics[topic] = c
	return c
}

// TxnCommitted counts a committed transaction and observes how long its
// commit (EndTransaction, including the flush before it) took.
func (m *Metrics) TxnCommitted(d time.Duration) {
	if m == nil {
		return
	}
	m.txnCommitted.Inc()
	m.commitSeconds.Observe(d.Seconds())
}

// TxnAborted counts an aborted transaction (error, cancel, client abort,
// shutdown, commit_on_close false).
func (m *Metrics) TxnAborted() {
	if m == nil {
		return
	}
	m.txnAborted.Inc()
}

// CheckpointDurable observes how long a checkpoint took to become durable:
// exactly-once, the commit; at-least-once, waiting for the stream's records
// to be acknowledged with acks=all.
func (m *Metrics) CheckpointDurable(deliveryMode string, d time.Duration) {
	if m == nil {
		return
	}
	m.checkpointSecs.WithLabelValues(delivery(deliveryMode)).Observe(d.Seconds())
}

// ProduceError counts a failed produce by code: the Kafka error name
// (e.g. "NOT_ENOUGH_REPLICAS") or "timeout"; kafka.ErrorCode maps a
// produce promise's error to it.
func (m *Metrics) ProduceError(code string) {
	if m == nil {
		return
	}
	m.produceErrors.WithLabelValues(code).Inc()
}

// BufferedBytes moves the producer buffer gauge by delta: + when records are
// handed to a producer, - when Kafka has acknowledged or failed them (writers
// report per batch).
func (m *Metrics) BufferedBytes(delta int64) {
	if m == nil {
		return
	}
	m.bufferedBytes.Add(float64(delta))
}

// StreamsQueued moves the gauge of streams waiting for a slot by delta.
func (m *Metrics) StreamsQueued(delta int) {
	if m == nil {
		return
	}
	m.streamsQueued.Add(float64(delta))
}

// AuthFailure counts a refused authentication; reason is one of
// AuthReasons.
func (m *Metrics) AuthFailure(reason string) {
	if m == nil {
		return
	}
	m.authFailures.WithLabelValues(reason).Inc()
}

// ReplicaClaimed sets flightsink_replica_claimed{replica=name}: 1 while the
// server holds its replica name, 0 when it does not (lost, not renewed).
// A server claims one name in its life, so the label has one value.
func (m *Metrics) ReplicaClaimed(name string, held bool) {
	if m == nil {
		return
	}
	v := 0.0
	if held {
		v = 1
	}
	m.replicaClaimed.WithLabelValues(name).Set(v)
}
