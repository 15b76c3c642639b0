package kafka

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
)

// TopicInfoMaxAge is how long the facts of a topic read when a stream opens
// (partitions, max.message.bytes, cleanup.policy, timestamp settings) serve
// later streams to the same topic without asking Kafka again: opening a
// stream to a known topic costs no round trip (a look-up is two: metadata
// and DescribeConfigs). A topic's config change is seen by streams opened
// up to this long after it. A missing topic is never remembered, so
// creating one is seen at once; a topic deleted meanwhile fails the first
// stream that produces to it as missing (ErrTopicMissing), which also
// forgets it, so the next stream's open reports it missing.
const TopicInfoMaxAge = 10 * time.Second

// topicCacheMax is the size above which putting an entry first drops the
// expired ones (topic_field streams may route to many topics).
const topicCacheMax = 4096

// topicCache remembers TopicInfo per topic for TopicInfoMaxAge.
type topicCache struct {
	mu  sync.Mutex
	m   map[string]cachedTopic
	now func() time.Time // time.Now; tests move it
}

type cachedTopic struct {
	info TopicInfo
	read time.Time
}

func newTopicCache() *topicCache {
	return &topicCache{m: map[string]cachedTopic{}, now: time.Now}
}

// get returns the topic's facts if they were read less than
// TopicInfoMaxAge ago.
func (c *topicCache) get(topic string) (TopicInfo, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.m[topic]
	if !ok || c.now().Sub(e.read) >= TopicInfoMaxAge {
		return TopicInfo{}, false
	}
	return e.info, true
}

// put remembers facts just read.
func (c *topicCache) put(info TopicInfo) {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.now()
	if len(c.m) >= topicCacheMax {
		for t, e := range c.m {
			if now.Sub(e.read) >= TopicInfoMaxAge {
				delete(c.m, t)
			}
		}
	}
	c.m[info.Topic] = cachedTopic{info: info, read: now}
}

// forget drops a topic Kafka reported missing.
func (c *topicCache) forget(topic string) {
	c.mu.Lock()
	delete(c.m, topic)
	c.mu.Unlock()
}

// Topic looks the topic up (creating it when kafka.create_topics is on) and
// reads its max.message.bytes. Errors wrap ErrTopicMissing or ErrUnavailable.
// Facts read less than TopicInfoMaxAge ago are answered without a request.
func (s *Sink) Topic(ctx context.Context, topic string) (TopicInfo, error) {
	if info, ok := s.topics.get(topic); ok {
		return info, nil
	}
	ctx, cancel := context.WithTimeout(ctx, s.cfg.ProduceTimeout)
	defer cancel()
	info, err := s.describe(ctx, topic)
	if errors.Is(err, ErrTopicMissing) && s.cfg.CreateTopics {
		if cerr := s.createTopic(ctx, topic, -1, nil); cerr != nil {
			return TopicInfo{}, s.unavailable(ctx, fmt.Errorf("creating topic %q (kafka.create_topics is on): %w", topic, cerr))
		}
		s.log.Info().Str("topic", topic).Msg("created topic (kafka.create_topics is on)")
		info, err = s.describeRetry(ctx, topic)
	}
	if err != nil {
		return TopicInfo{}, err
	}
	s.remember(info)
	return info, nil
}

// remember keeps a topic's facts just read: its batch cap and the cache.
func (s *Sink) remember(info TopicInfo) {
	s.mu.Lock()
	s.limits[info.Topic] = info.MaxMessageBytes
	s.mu.Unlock()
	s.topics.put(info)
}

// describeRetry waits for a just-created topic to show up in metadata.
func (s *Sink) describeRetry(ctx context.Context, topic string) (TopicInfo, error) {
	for {
		info, err := s.describe(ctx, topic)
		if !errors.Is(err, ErrTopicMissing) || ctx.Err() != nil {
			return info, err
		}
		select {
		case <-ctx.Done():
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func (s *Sink) describe(ctx context.Context, topic string) (TopicInfo, error) {
	topics, err := s.admin.ListTopics(ctx, topic)
	if err != nil {
		return TopicInfo{}, s.unavailable(ctx, fmt.Errorf("looking up topic %q: %w", topic, err))
	}
	d, ok := topics[topic]
	if !ok || errors.Is(d.Err, kerr.UnknownTopicOrPartition) {
		return TopicInfo{}, fmt.Errorf("%w: topic %q does not exist; create it first, or set kafka.create_topics: true", ErrTopicMissing, topic)
	}
	if d.Err != nil {
		return TopicInfo{}, s.unavailable(ctx, fmt.Errorf("looking up topic %q: %w", topic, d.Err))
	}
	info := TopicInfo{Topic: topic, Partitions: len(d.Partitions), MaxMessageBytes: 1048588, CreateTime: true,
		TimestampBeforeMax: math.MaxInt64, TimestampAfterMax: math.MaxInt64}
	rcs, err := s.admin.DescribeTopicConfigs(ctx, topic)
	if err != nil {
		return TopicInfo{}, s.unavailable(ctx, fmt.Errorf("reading config of topic %q: %w", topic, err))
	}
	var difference time.Duration = -1
	before, after := false, false
	for _, rc := range rcs {
		for _, c := range rc.Configs {
			if c.Value == nil {
				continue
			}
			v := *c.Value
			switch c.Key {
			case "max.message.bytes":
				if n, err := strconv.ParseInt(v, 10, 32); err == nil && n > 0 {
					info.MaxMessageBytes = int32(n)
				}
			case "cleanup.policy":
				info.Compacted = strings.Contains(v, "compact")
			case "message.timestamp.type":
				info.CreateTime = v != "LogAppendTime"
			case "message.timestamp.before.max.ms":
				info.TimestampBeforeMax, before = parseMillis(v), true
			case "message.timestamp.after.max.ms":
				info.TimestampAfterMax, after = parseMillis(v), true
			case "message.timestamp.difference.max.ms": // before Kafka 3.6
				difference = parseMillis(v)
			}
		}
	}
	if difference >= 0 && !before && !after {
		info.TimestampBeforeMax, info.TimestampAfterMax = difference, difference
	}
	return info, nil
}

// parseMillis reads a millisecond setting as a duration, saturating.
func parseMillis(v string) time.Duration {
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 0 {
		return math.MaxInt64
	}
	if n > math.MaxInt64/int64(time.Millisecond) {
		return math.MaxInt64
	}
	return time.Duration(n) * time.Millisecond
}

// Lookup is Topic without creating a missing topic.
func (s *Sink) Lookup(ctx context.Context, topic string) (TopicInfo, error) {
	if info, ok := s.topics.get(topic); ok {
		return info, nil
	}
	ctx, cancel := context.WithTimeout(ctx, s.cfg.ProduceTimeout)
	defer cancel()
	info, err := s.describe(ctx, topic)
	if err != nil {
		return TopicInfo{}, err
	}
	s.remember(info)
	return info, nil
}
