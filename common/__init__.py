"""What every stage shares: settings, topic names, the Kafka client factory, the Avro codec,
typed events, the one run loop and the two exactly-once processors (Kafka to Kafka in
``transactional``, Kafka to PostgreSQL in ``store``), dead letters and database migrations."""
