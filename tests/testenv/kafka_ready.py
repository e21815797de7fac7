#!/usr/bin/env python3
"""kafka_ready BOOTSTRAP: run by `scripts/testenv up` once the broker answers metadata requests.
Commits one Kafka transaction and one consumer-group offset, so the broker's internal topics
(__transaction_state, __consumer_offsets) exist and their coordinators are loaded before any
test starts its clock — and `up` fails here, not in a test, if transactions do not work."""
import sys
import time

from confluent_kafka import Consumer, Producer, TopicPartition

TOPIC = "_testenv_ready"


def main():
    bootstrap = sys.argv[1]
    producer = Producer({"bootstrap.servers": bootstrap, "transactional.id": "testenv-ready",
                         "log_level": 3})
    producer.init_transactions(60)
    producer.begin_transaction()
    producer.produce(TOPIC, b"ready")
    producer.commit_transaction(60)
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "testenv-ready",
                         "enable.auto.commit": False, "log_level": 3})
    deadline = time.monotonic() + 60
    while True:
        try:
            consumer.commit(offsets=[TopicPartition(TOPIC, 0, 1)], asynchronous=False)
            break
        except Exception as e:  # coordinator still loading: retry until the deadline
            if time.monotonic() > deadline:
                raise SystemExit(f"kafka_ready: committing a group offset failed: {e}")
            time.sleep(0.2)
    consumer.close()


if __name__ == "__main__":
    main()
