package kafkatest

import (
	"context"
	"net"
	"time"

	"github.com/ory/dockertest/v3"
	"github.com/ory/dockertest/v3/docker"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// KafkaImage is the official Apache Kafka image dockertest runs.
const KafkaImage = "apache/kafka"

// KafkaImageTag is the Kafka 4.x release of that image.
const KafkaImageTag = "4.1.1"

// dockerKafka starts a single-node KRaft Kafka container when a Docker
// daemon answers; the container is removed when it expires (10 minutes) so
// a crashed test binary leaves nothing running.
func dockerKafka() ([]string, bool) {
	pool, err := dockertest.NewPool("")
	if err != nil || pool.Client.Ping() != nil {
		return nil, false
	}
	port := freePort()
	if port == "" {
		return nil, false
	}
	res, err := pool.RunWithOptions(&dockertest.RunOptions{
		Repository: KafkaImage,
		Tag:        KafkaImageTag,
		Env: []string{
			"KAFKA_NODE_ID=1",
			"KAFKA_PROCESS_ROLES=broker,controller",
			"KAFKA_LISTENERS=PLAINTEXT://:9092,CONTROLLER://:9093",
			"KAFKA_ADVERTISED_LISTENERS=PLAINTEXT://127.0.0.1:" + port,
			"KAFKA_CONTROLLER_LISTENER_NAMES=CONTROLLER",
			"KAFKA_LISTENER_SECURITY_PROTOCOL_MAP=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
			"KAFKA_CONTROLLER_QUORUM_VOTERS=1@localhost:9093",
			"KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR=1",
			"KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR=1",
			"KAFKA_TRANSACTION_STATE_LOG_MIN_ISR=1",
			"KAFKA_GROUP_INITIAL_REBALANCE_DELAY_MS=0",
			"KAFKA_AUTO_CREATE_TOPICS_ENABLE=false",
		},
		PortBindings: map[docker.Port][]docker.PortBinding{
			"9092/tcp": {{HostIP: "127.0.0.1", HostPort: port}},
		},
	}, func(hc *docker.HostConfig) { hc.AutoRemove = true })
	if err != nil {
		return nil, false
	}
	_ = res.Expire(600)
	addr := "127.0.0.1:" + port
	pool.MaxWait = 90 * time.Second
	err = pool.Retry(func() error {
		cl, err := kgo.NewClient(kgo.SeedBrokers(addr))
		if err != nil {
			return err
		}
		defer cl.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_, err = kadm.NewClient(cl).BrokerMetadata(ctx)
		return err
	})
	if err != nil {
		_ = pool.Purge(res)
		return nil, false
	}
	return []string{addr}, true
}

func freePort() string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return ""
	}
	defer l.Close()
	_, port, _ := net.SplitHostPort(l.Addr().String())
	return port
}
