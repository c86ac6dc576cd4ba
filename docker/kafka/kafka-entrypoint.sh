#!/bin/bash
# The broker of Dockerfile.kafka: one Apache Kafka node in KRaft mode (broker + controller).
# Configuration as with the apache/kafka image: every KAFKA_<NAME> variable is the property
# <name> (KAFKA_LOG_DIRS -> log.dirs; "__" -> "_", "___" -> "-"), over single-node defaults
# below.  KAFKA_HEAP_OPTS / KAFKA_JVM_OPTS are JVM flags; CLUSTER_ID (else a random one, kept in
# the data directory) formats the storage on first start.
set -euo pipefail
CONF=/etc/kafka
declare -A props=(
    [node.id]=1
    [process.roles]=broker,controller
    [controller.quorum.voters]=1@localhost:9093
    [controller.listener.names]=CONTROLLER
    [listeners]=PLAINTEXT://:9092,CONTROLLER://:9093
    [advertised.listeners]=PLAINTEXT://localhost:9092
    [listener.security.protocol.map]=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
    [log.dirs]=/var/lib/kafka/data
    [num.partitions]=3
    [default.replication.factor]=1
    [min.insync.replicas]=1
    [offsets.topic.replication.factor]=1
    [transaction.state.log.replication.factor]=1
    [transaction.state.log.min.isr]=1
    [share.coordinator.state.topic.replication.factor]=1
    [share.coordinator.state.topic.min.isr]=1
    [group.initial.rebalance.delay.ms]=0
)
while IFS='=' read -r -d '' name value; do
    case "$name" in
        KAFKA_HEAP_OPTS|KAFKA_JVM_OPTS|KAFKA_OPTS|KAFKA_VERSION) continue ;;
        KAFKA_*) ;;
        *) continue ;;
    esac
    key="${name#KAFKA_}"
    key="${key//___/-}"
    key="${key//__/@}"
    key="${key//_/.}"
    key="${key//@/_}"
    props["${key,,}"]="$value"
done < <(env -0)
{
    echo "# written by kafka-entrypoint.sh from KAFKA_* at every start"
    for k in $(printf '%s\n' "${!props[@]}" | sort); do echo "$k=${props[$k]}"; done
} >"$CONF/server.properties"

JAVA_OPTS=(${KAFKA_HEAP_OPTS:--Xms128m -Xmx512m} -XX:+UseG1GC -XX:MaxGCPauseMillis=20
           -XX:+ExitOnOutOfMemoryError -Djava.awt.headless=true
           -Dlog4j2.configurationFile="$CONF/log4j2.properties" ${KAFKA_JVM_OPTS:-})
data="${props[log.dirs]%%,*}"
if [[ ! -f "$data/meta.properties" ]]; then
    id="${CLUSTER_ID:-}"
    if [[ -z "$id" ]]; then   # a Kafka Uuid: 16 random bytes, URL-safe base64, no padding
        id="$(head -c 16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=\n')"
    fi
    echo "kafka-entrypoint: formatting $data (cluster id $id)"
    java -Xmx256m -XX:TieredStopAtLevel=1 -Dlog4j2.configurationFile="$CONF/log4j2.properties" \
        -cp '/opt/kafka/libs/*' kafka.tools.StorageTool format -t "$id" \
        -c "$CONF/server.properties"
fi
exec java "${JAVA_OPTS[@]}" -cp '/opt/kafka/libs/*' kafka.Kafka "$CONF/server.properties"
