#!/bin/bash
# kafka-topics.sh as in Kafka's distribution (and at the same path as in the apache/kafka image):
# org.apache.kafka.tools.TopicCommand from the broker's jars.
exec java -Xmx256m -XX:TieredStopAtLevel=1 -XX:+UseSerialGC \
    -Dlog4j2.configurationFile=/etc/kafka/tools-log4j2.properties \
    -cp '/opt/kafka/libs/*' org.apache.kafka.tools.TopicCommand "$@"
