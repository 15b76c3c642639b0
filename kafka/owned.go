package kafka

// OwnedTopics are the topics flightsink itself writes, each with the
// setting that names it. No client may write to them, whatever its
// permissions say (a forged record in the progress topic would move another
// writer's resume point). A new topic the server owns (a lease topic, a
// schema store) is added here and is refused everywhere at once.
func (s *Sink) OwnedTopics() map[string]string {
	return map[string]string{
		s.cfg.ProgressTopic: "kafka.progress_topic",
		s.cfg.ReplicaTopic:  "kafka.replica_topic",
		s.cfg.TablesTopic:   "kafka.tables_topic",
	}
}
