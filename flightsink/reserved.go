package flightsink

import (
	"strings"

	"google.golang.org/grpc/codes"
)

// kafkaInternalPrefix starts the names of Kafka's internal topics
// (__consumer_offsets, __transaction_state, __cluster_metadata).
const kafkaInternalPrefix = "__"

// reservedTopic says why no client may write to topic: the server owns it
// (kafka.Sink.OwnedTopics) or it is one of Kafka's internal topics; "" when
// it is an ordinary topic.
func reservedTopic(sink Kafka, topic string) string {
	if strings.HasPrefix(topic, kafkaInternalPrefix) {
		return `names starting "__" are Kafka's internal topics`
	}
	if sink == nil {
		return ""
	}
	if setting, ok := sink.OwnedTopics()[topic]; ok {
		return "flightsink owns it (" + setting + ")"
	}
	return ""
}

// authorize decides, before any row is produced, whether principal p may
// write to topic with delivery d: never to a reserved topic, whatever its
// patterns say, else as auth.principals allows. Every write path (PATH and
// CMD DoPut, topic_field rows, Flight SQL ingest) goes through it.
func (s *Server) authorize(p *Principal, topic string, d Delivery) error {
	if why := reservedTopic(s.sink, topic); why != "" {
		return newError(codes.PermissionDenied, ReasonReservedTopic, "topic %q is reserved: %s; no principal may write to it", topic, why)
	}
	return authorize(p, topic, d)
}
