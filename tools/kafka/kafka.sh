#!/usr/bin/env bash
# Single-node Apache Kafka (KRaft, combined broker+controller) on loopback,
# run straight from the official jars that Maven resolves from its central
# repository. For tests, CI and developers; not for production.
#
# Needs: Java 17+, Maven 3 (only for `fetch`), coreutils, util-linux (flock).
# Optional: kcat (readiness probe; without it, or with TLSDIAG_KAFKA_NO_KCAT=1,
# "port open + 'Kafka Server started' in kafka.log" is used).
#
#   kafka.sh fetch
#   kafka.sh start  [--port 9092] [--dir DATA_DIR] [--prop KEY=VALUE]... [--timeout 60]
#                   (fetches first if needed; prints the bootstrap address when ready)
#   kafka.sh stop   [--dir DATA_DIR] [--timeout 20]
#   kafka.sh status [--dir DATA_DIR]
#   kafka.sh create-topic NAME [--partitions N] [--compact] [--config K=V]...
#                              [--dir DATA_DIR | --port PORT]
#   kafka.sh classpath | java-cmd [--dir DATA_DIR]   (java-cmd: the broker's command line)
#
# Environment:
#   TLSDIAG_KAFKA_HOME  cache root (default $HOME/.cache/tlsdiag/kafka);
#                       jars go to $TLSDIAG_KAFKA_HOME/<version>/libs
#   KAFKA_VERSION       override the version pinned in pom.xml
#   KAFKA_HEAP_OPTS     JVM heap flags (default -Xms64m -Xmx512m)
#   KAFKA_JVM_OPTS      extra JVM flags for the broker
#   TLSDIAG_KAFKA_JIT   c1 (default: -XX:TieredStopAtLevel=1, faster start) or full
#   KAFKA_MVN_OPTS      extra Maven flags for fetch (e.g. -Dmaven.repo.local=...)
#   JAVA                java binary (default: java on PATH)
#   TLSDIAG_KAFKA_CDS   0 = no class-data-sharing archive (see setup_cds)
#
# The PLAINTEXT listener is 127.0.0.1:PORT, the controller listener
# 127.0.0.1:PORT+1. The data dir holds server.properties, log4j2.properties,
# kafka.pid, kafka.log (log4j, rolled at 10 MB), kafka.out (JVM stdout/stderr),
# java.cmd (the exact broker command line) and the partition data in data/.
#
# Topics are auto-created (num.partitions default 3); `create-topic` uses
# org.apache.kafka.tools.TopicCommand from the same jars for explicit
# partition counts and cleanup.policy=compact.
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
POM="$SCRIPT_DIR/pom.xml"
CACHE_ROOT="${TLSDIAG_KAFKA_HOME:-${HOME:-/tmp}/.cache/tlsdiag/kafka}"
JAVA="${JAVA:-java}"
HEAP_OPTS="${KAFKA_HEAP_OPTS:--Xms64m -Xmx512m}"
JVM_OPTS="${KAFKA_JVM_OPTS:-}"
# C1-only JIT: about half the CPU (and wall time) to start, less RSS, and no
# slower for test-sized traffic; TLSDIAG_KAFKA_JIT=full restores C2.
case "${TLSDIAG_KAFKA_JIT:-c1}" in
    c1) JIT_OPTS="-XX:TieredStopAtLevel=1" ;;
    full) JIT_OPTS="" ;;
    *) echo "kafka.sh: error: TLSDIAG_KAFKA_JIT must be c1 or full" >&2; exit 1 ;;
esac

die() { echo "kafka.sh: error: $*" >&2; exit 1; }
log() { echo "kafka.sh: $*" >&2; }

pinned_version() {
    local v
    v="$(sed -n 's:.*<kafka.version>\([^<]*\)</kafka.version>.*:\1:p' "$POM" | head -n1)"
    [[ -n "$v" ]] || die "cannot read <kafka.version> from $POM"
    echo "$v"
}

VERSION="${KAFKA_VERSION:-$(pinned_version)}"
[[ "$VERSION" =~ ^[0-9A-Za-z._-]+$ ]] || die "bad KAFKA_VERSION '$VERSION'"
VDIR="$CACHE_ROOT/$VERSION"
LIBS="$VDIR/libs"
STAMP="$VDIR/.complete"
DEFAULT_DIR="$CACHE_ROOT/data"

# ---------------------------------------------------------------- fetch ----

pom_digest() { { cat "$POM"; echo "version=$VERSION"; } | sha256sum | cut -d' ' -f1; }

is_fetched() {
    [[ -f "$STAMP" && -d "$LIBS" ]] && [[ "$(cat "$STAMP")" == "$(pom_digest)" ]]
}

cmd_fetch() {
    [[ $# -eq 0 ]] || die "fetch takes no arguments"
    if is_fetched; then
        log "Kafka $VERSION jars already in $LIBS"
        return 0
    fi
    command -v mvn >/dev/null 2>&1 || die "Maven (mvn) not found; it is needed once to fetch the Kafka jars"
    mkdir -p "$VDIR"
    # One fetch at a time per version (parallel test workers share the cache).
    exec 9>"$VDIR/.lock"
    flock -w 900 9 || die "timed out waiting for another fetch ($VDIR/.lock)"
    if is_fetched; then
        log "Kafka $VERSION jars already in $LIBS"
        return 0
    fi
    local tmp="$VDIR/libs.tmp.$$"
    rm -rf "$tmp"
    log "resolving org.apache.kafka:kafka_2.13:$VERSION with Maven into $LIBS"
    # shellcheck disable=SC2086
    if ! mvn -B -q -Dstyle.color=never -f "$POM" ${KAFKA_MVN_OPTS:-} \
            -Dkafka.version="$VERSION" \
            dependency:copy-dependencies \
            -DincludeScope=runtime -DoutputDirectory="$tmp" 2>&1 \
            | sed 's/\x1b\[[0-9;]*m//g' >&2; then
        rm -rf "$tmp"
        die "Maven could not resolve the Kafka $VERSION jars (see output above)"
    fi
    [[ -f "$tmp/kafka_2.13-$VERSION.jar" ]] || { rm -rf "$tmp"; die "kafka_2.13-$VERSION.jar missing after resolution"; }
    rm -rf "$LIBS"
    rm -f "$VDIR"/kafka-*.jsa  # class-data archives are tied to the old jars
    mv "$tmp" "$LIBS"
    pom_digest >"$STAMP"
    log "fetched $(find "$LIBS" -name '*.jar' | wc -l) jars ($(du -sh "$LIBS" | cut -f1)) into $LIBS"
}

require_fetched() {
    is_fetched || die "Kafka $VERSION jars not fetched; run: $0 fetch"
}

JAVA_RUNTIME=""  # java.runtime.version, set by require_java

require_java() {
    command -v "$JAVA" >/dev/null 2>&1 || die "java not found (Java 17+ is required)"
    local props major
    props="$("$JAVA" -XshowSettings:properties -version 2>&1 || true)"
    major="$(sed -n 's/^ *java.specification.version = \([0-9]*\).*/\1/p' <<<"$props" | head -n1)"
    [[ -n "$major" ]] || die "cannot determine the Java version of '$JAVA'"
    (( major >= 17 )) || die "Java $major found; Kafka $VERSION needs Java 17+"
    JAVA_RUNTIME="$(sed -n 's/^ *java.runtime.version = //p' <<<"$props" | head -n1 | tr -c 'A-Za-z0-9._+\n-' '_')"
}

# Class-data-sharing archive of the broker's classes, one per Java build:
# made by the first broker run from this cache (dumped when it stops, which
# then takes some seconds longer) and used by later runs; it roughly halves
# JVM start-up. TLSDIAG_KAFKA_CDS=0 turns it off.
CDS_OPTS=()
cds_archive() { echo "$VDIR/kafka-${JAVA_RUNTIME:-unknown}.jsa"; }

setup_cds() { # setup_cds DIR: fill CDS_OPTS for a broker about to start
    local dir="$1" jsa
    CDS_OPTS=()
    rm -f "$dir/kafka.cds"
    [[ "${TLSDIAG_KAFKA_CDS:-1}" != 0 && -n "$JAVA_RUNTIME" ]] || return 0
    jsa="$(cds_archive)"
    find "$VDIR" -maxdepth 1 -name 'kafka-*.jsa.*.tmp' -mmin +60 -delete 2>/dev/null || true
    if [[ -s "$jsa" ]]; then
        CDS_OPTS=("-XX:SharedArchiveFile=$jsa" -Xshare:auto)
    else
        local tmp="$jsa.$$.tmp"
        CDS_OPTS=("-XX:ArchiveClassesAtExit=$tmp")
        echo "$tmp" >"$dir/kafka.cds"
    fi
}

tool_opts() { # JVM flags for the short-lived tools (format, TopicCommand)
    local jsa
    jsa="$(cds_archive)"
    echo "-Xmx256m -XX:TieredStopAtLevel=1 -XX:+UseG1GC"
    if [[ "${TLSDIAG_KAFKA_CDS:-1}" != 0 && -n "$JAVA_RUNTIME" && -s "$jsa" ]]; then
        echo "-Xshare:auto -XX:SharedArchiveFile=$jsa"
    fi
}

finish_cds() { # finish_cds DIR CLEAN: install the archive a stopped broker dumped
    local dir="$1" clean="$2" tmp jsa
    [[ -f "$dir/kafka.cds" ]] || return 0
    tmp="$(cat "$dir/kafka.cds")"
    rm -f "$dir/kafka.cds"
    [[ "$tmp" == "$VDIR"/kafka-*.jsa.*.tmp ]] || return 0
    jsa="${tmp%.*.tmp}"
    if [[ "$clean" == 1 && -s "$tmp" && ! -e "$jsa" ]]; then
        mv -f "$tmp" "$jsa" && log "class-data-sharing archive saved: $jsa"
    else
        rm -f "$tmp"
    fi
}

# ------------------------------------------------------------- helpers ----

abs_dir() { mkdir -p "$1" && (cd "$1" && pwd); }

prop_get() { # prop_get FILE KEY
    sed -n "s/^$2=//p" "$1" 2>/dev/null | tail -n1
}

check_port() {
    [[ "$1" =~ ^[1-9][0-9]{0,4}$ ]] && (( $1 <= 65534 )) || die "bad port '$1'"
}

port_in_use() { # something accepts connections on 127.0.0.1:$1
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# pid from DIR/kafka.pid if that process is our broker for DIR, else empty
running_pid() {
    local dir="$1" pid
    [[ -f "$dir/kafka.pid" ]] || return 0
    pid="$(cat "$dir/kafka.pid" 2>/dev/null || true)"
    [[ "$pid" =~ ^[0-9]+$ ]] || return 0
    [[ -r "/proc/$pid/cmdline" ]] || return 0
    if tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF -- "$dir/server.properties"; then
        echo "$pid"
    fi
}

# broker answers a metadata request and lists itself
broker_answers() {
    local port="$1" dir="$2" out
    if [[ -z "${TLSDIAG_KAFKA_NO_KCAT:-}" ]] && command -v kcat >/dev/null 2>&1; then
        out="$(timeout 10 kcat -b "127.0.0.1:$port" -L -m 3 2>/dev/null)" || return 1
        grep -q "broker 1 at 127.0.0.1:$port" <<<"$out"
    else
        # only log lines written since this start (kafka.log is appended to)
        local off size
        off="$(cat "$dir/kafka.log.offset" 2>/dev/null || echo 0)"
        size="$(stat -c %s "$dir/kafka.log" 2>/dev/null || echo 0)"
        (( size >= off )) || off=0
        port_in_use "$port" && tail -c +"$((off + 1))" "$dir/kafka.log" 2>/dev/null \
            | grep -q "Kafka Server started"
    fi
}

log_tail() {
    local dir="$1"
    for f in "$dir/kafka.out" "$dir/kafka.log"; do
        [[ -s "$f" ]] || continue
        echo "---- last 40 lines of $f ----" >&2
        tail -n 40 "$f" >&2
    done
}

new_cluster_id() { # Kafka Uuid: 16 random bytes, URL-safe base64, no padding, not starting with '-'
    local id
    while :; do
        id="$(head -c 16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=\n')"
        [[ "$id" != -* && "$id" != "AAAAAAAAAAAAAAAAAAAAAA" && "$id" != "AAAAAAAAAAAAAAAAAAAAAQ" ]] && break
    done
    echo "$id"
}

java_cmd() { # the exact broker command line, one word per line
    local dir="$1"
    # shellcheck disable=SC2206
    local heap=($HEAP_OPTS) jit=($JIT_OPTS) extra=($JVM_OPTS)
    printf '%s\n' "$JAVA" "${heap[@]}" "${jit[@]}" "${CDS_OPTS[@]}" \
        -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:+ExitOnOutOfMemoryError \
        -Djava.awt.headless=true "${extra[@]}" \
        "-Dlog4j2.configurationFile=$dir/log4j2.properties" \
        "-Dkafka.logs.dir=$dir" \
        -cp "$LIBS/*" kafka.Kafka "$dir/server.properties"
}

write_configs() { # write_configs DIR PORT PROPS...
    local dir="$1" port="$2"; shift 2
    local cport=$((port + 1))
    {
        echo "# written by tools/kafka/kafka.sh start; rewritten on every start"
        echo "process.roles=broker,controller"
        echo "node.id=1"
        echo "controller.quorum.voters=1@127.0.0.1:$cport"
        echo "controller.listener.names=CONTROLLER"
        echo "listeners=PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$cport"
        echo "advertised.listeners=PLAINTEXT://127.0.0.1:$port"
        echo "inter.broker.listener.name=PLAINTEXT"
        echo "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT"
        echo "log.dirs=$dir/data"
        echo "num.partitions=3"
        echo "auto.create.topics.enable=true"
        echo "default.replication.factor=1"
        echo "min.insync.replicas=1"
        echo "offsets.topic.replication.factor=1"
        echo "offsets.topic.num.partitions=5"
        echo "transaction.state.log.replication.factor=1"
        echo "transaction.state.log.min.isr=1"
        echo "transaction.state.log.num.partitions=5"
        echo "share.coordinator.state.topic.replication.factor=1"
        echo "share.coordinator.state.topic.min.isr=1"
        echo "group.initial.rebalance.delay.ms=0"
        echo "num.network.threads=2"
        echo "num.io.threads=4"
        echo "num.recovery.threads.per.data.dir=1"
        echo "log.cleaner.enable=true"
        echo "log.cleaner.threads=1"
        echo "log.cleaner.dedupe.buffer.size=16777216"
        echo "log.retention.hours=24"
        echo "log.segment.bytes=67108864"
        echo "delete.topic.enable=true"
        local p
        for p in "$@"; do echo "$p"; done
    } >"$dir/server.properties.tmp"
    mv "$dir/server.properties.tmp" "$dir/server.properties"

    cat >"$dir/log4j2.properties" <<EOF
# written by tools/kafka/kafka.sh start
status = warn
appender.file.type = RollingFile
appender.file.name = file
appender.file.fileName = $dir/kafka.log
appender.file.filePattern = $dir/kafka.log.%i
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
appender.file.policies.type = Policies
appender.file.policies.size.type = SizeBasedTriggeringPolicy
appender.file.policies.size.size = 10MB
appender.file.strategy.type = DefaultRolloverStrategy
appender.file.strategy.max = 3
rootLogger.level = INFO
rootLogger.appenderRef.file.ref = file
logger.request.name = kafka.request.logger
logger.request.level = WARN
logger.state.name = state.change.logger
logger.state.level = WARN
logger.cleaner.name = kafka.log.LogCleaner
logger.cleaner.level = INFO
EOF
}

# ------------------------------------------------------------- commands ----

cmd_start() {
    local port=9092 dir="$DEFAULT_DIR" timeout=60 props=()
    while [[ $# -gt 0 ]]; do
        case "$1" in
            --port) port="${2:?--port needs a value}"; shift 2 ;;
            --dir) dir="${2:?--dir needs a value}"; shift 2 ;;
            --prop) [[ "${2:-}" == *=* ]] || die "--prop needs KEY=VALUE"; props+=("$2"); shift 2 ;;
            --timeout) timeout="${2:?--timeout needs a value}"; shift 2 ;;
            *) die "start: unknown argument '$1'" ;;
        esac
    done
    check_port "$port"
    [[ "$timeout" =~ ^[1-9][0-9]{0,4}$ ]] || die "bad --timeout '$timeout'"
    require_java
    is_fetched || (cmd_fetch) || exit 1
    dir="$(abs_dir "$dir")"

    local pid
    pid="$(running_pid "$dir")"
    if [[ -n "$pid" ]]; then
        local oldport
        oldport="$(prop_get "$dir/server.properties" advertised.listeners | sed 's/.*://')"
        [[ "$oldport" == "$port" ]] || die "a broker (pid $pid) already runs on $dir with port $oldport"
        if broker_answers "$port" "$dir"; then
            log "already running: pid $pid, bootstrap 127.0.0.1:$port"
            echo "127.0.0.1:$port"
            return 0
        fi
    else
        rm -f "$dir/kafka.pid"
        local p
        for p in "$port" $((port + 1)); do
            port_in_use "$p" && die "port $p on 127.0.0.1 is already in use"
        done
        write_configs "$dir" "$port" "${props[@]}"
        if [[ ! -f "$dir/data/meta.properties" ]]; then
            local cid
            cid="$(new_cluster_id)"
            echo "$cid" >"$dir/cluster.id"
            log "formatting $dir/data (cluster id $cid)"
            # shellcheck disable=SC2046
            "$JAVA" $(tool_opts) -Dlog4j2.configurationFile="$dir/log4j2.properties" \
                -Dkafka.logs.dir="$dir" -cp "$LIBS/*" \
                kafka.tools.StorageTool format -t "$cid" -c "$dir/server.properties" \
                >"$dir/format.out" 2>&1 \
                || { cat "$dir/format.out" >&2; die "storage format failed"; }
        fi
        : >"$dir/kafka.out"
        stat -c %s "$dir/kafka.log" >"$dir/kafka.log.offset" 2>/dev/null || echo 0 >"$dir/kafka.log.offset"
        setup_cds "$dir"
        local cmd=()
        mapfile -t cmd < <(java_cmd "$dir")
        printf '%q ' "${cmd[@]}" >"$dir/java.cmd"; echo >>"$dir/java.cmd"
        setsid nohup "${cmd[@]}" >>"$dir/kafka.out" 2>&1 </dev/null &
        pid=$!
        echo "$pid" >"$dir/kafka.pid"
        log "started pid $pid, waiting up to ${timeout}s for 127.0.0.1:$port"
    fi

    local deadline=$((SECONDS + timeout))
    while (( SECONDS < deadline )); do
        if ! kill -0 "$pid" 2>/dev/null; then
            log "broker process $pid exited during startup"
            log_tail "$dir"
            rm -f "$dir/kafka.pid"
            finish_cds "$dir" 0
            exit 1
        fi
        if broker_answers "$port" "$dir"; then
            log "ready: bootstrap 127.0.0.1:$port (pid $pid, dir $dir)"
            echo "127.0.0.1:$port"
            return 0
        fi
        sleep 0.5
    done
    log "broker not ready after ${timeout}s (pid $pid still running; stop it with: $0 stop --dir $dir)"
    log_tail "$dir"
    exit 1
}

cmd_stop() {
    local dir="$DEFAULT_DIR" timeout=20
    while [[ $# -gt 0 ]]; do
        case "$1" in
            --dir) dir="${2:?--dir needs a value}"; shift 2 ;;
            --timeout) timeout="${2:?--timeout needs a value}"; shift 2 ;;
            *) die "stop: unknown argument '$1'" ;;
        esac
    done
    [[ "$timeout" =~ ^[1-9][0-9]{0,4}$ ]] || die "bad --timeout '$timeout'"
    [[ -d "$dir" ]] || { log "no data dir $dir: nothing to stop"; return 0; }
    dir="$(cd "$dir" && pwd)"
    local pid
    pid="$(running_pid "$dir")"
    if [[ -z "$pid" ]]; then
        rm -f "$dir/kafka.pid"
        finish_cds "$dir" 0
        log "not running ($dir)"
        return 0
    fi
    # a broker that dumps the class-data archive at exit needs longer
    [[ -f "$dir/kafka.cds" ]] && timeout=$((timeout + 30))
    kill -TERM "$pid" 2>/dev/null || true
    local clean=1
    local deadline=$((SECONDS + timeout))
    while kill -0 "$pid" 2>/dev/null && (( SECONDS < deadline )); do sleep 0.2; done
    if kill -0 "$pid" 2>/dev/null; then
        log "pid $pid still running after ${timeout}s: SIGKILL"
        kill -KILL "$pid" 2>/dev/null || true
        clean=0
        while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
    fi
    rm -f "$dir/kafka.pid"
    finish_cds "$dir" "$clean"
    log "stopped pid $pid ($dir)"
}

cmd_status() {
    local dir="$DEFAULT_DIR"
    while [[ $# -gt 0 ]]; do
        case "$1" in
            --dir) dir="${2:?--dir needs a value}"; shift 2 ;;
            *) die "status: unknown argument '$1'" ;;
        esac
    done
    local fetched="no"
    is_fetched && fetched="yes ($LIBS)"
    echo "kafka version: $VERSION, jars fetched: $fetched"
    if [[ ! -d "$dir" ]]; then echo "stopped (no data dir $dir)"; return 3; fi
    dir="$(cd "$dir" && pwd)"
    local pid port
    pid="$(running_pid "$dir")"
    if [[ -z "$pid" ]]; then echo "stopped ($dir)"; return 3; fi
    port="$(prop_get "$dir/server.properties" advertised.listeners | sed 's/.*://')"
    local rss
    rss="$(awk '/^VmRSS:/ {print $2 " " $3}' "/proc/$pid/status" 2>/dev/null || true)"
    if broker_answers "$port" "$dir"; then
        echo "running: pid $pid, bootstrap 127.0.0.1:$port, rss ${rss:-?}, dir $dir"
        return 0
    fi
    echo "starting or unresponsive: pid $pid, port $port, rss ${rss:-?}, dir $dir"
    return 1
}

cmd_create_topic() {
    local name="" partitions="" dir="$DEFAULT_DIR" port="" configs=()
    while [[ $# -gt 0 ]]; do
        case "$1" in
            --partitions) partitions="${2:?--partitions needs a value}"; shift 2 ;;
            --compact) configs+=("cleanup.policy=compact"); shift ;;
            --config) [[ "${2:-}" == *=* ]] || die "--config needs KEY=VALUE"; configs+=("$2"); shift 2 ;;
            --dir) dir="${2:?--dir needs a value}"; shift 2 ;;
            --port) port="${2:?--port needs a value}"; shift 2 ;;
            -*) die "create-topic: unknown option '$1'" ;;
            *) [[ -z "$name" ]] || die "create-topic takes one topic name"; name="$1"; shift ;;
        esac
    done
    [[ -n "$name" ]] || die "create-topic needs a topic name"
    [[ "$name" =~ ^[A-Za-z0-9._-]{1,249}$ ]] || die "invalid topic name '$name'"
    if [[ -n "$partitions" ]]; then
        [[ "$partitions" =~ ^[1-9][0-9]{0,5}$ ]] || die "bad --partitions '$partitions'"
    fi
    if [[ -z "$port" ]]; then
        [[ -f "$dir/server.properties" ]] || die "no $dir/server.properties; pass --port or --dir"
        port="$(prop_get "$dir/server.properties" advertised.listeners | sed 's/.*://')"
    fi
    check_port "$port"
    require_java
    require_fetched
    local args=(--bootstrap-server "127.0.0.1:$port" --create --if-not-exists
                --topic "$name" --replication-factor 1)
    [[ -n "$partitions" ]] && args+=(--partitions "$partitions")
    local c
    for c in "${configs[@]}"; do args+=(--config "$c"); done
    # shellcheck disable=SC2046
    "$JAVA" $(tool_opts) -cp "$LIBS/*" \
        org.apache.kafka.tools.TopicCommand "${args[@]}"
}

usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'; }

main() {
    local sub="${1:-}"
    [[ $# -gt 0 ]] && shift
    case "$sub" in
        fetch) cmd_fetch "$@" ;;
        start) cmd_start "$@" ;;
        stop) cmd_stop "$@" ;;
        status) cmd_status "$@" ;;
        create-topic) cmd_create_topic "$@" ;;
        classpath) require_fetched; echo "$LIBS/*" ;;
        java-cmd)
            local dir="$DEFAULT_DIR"
            [[ "${1:-}" == "--dir" ]] && dir="${2:?--dir needs a value}"
            # the exact command of the last start, else the base command
            if [[ -f "$dir/java.cmd" ]]; then cat "$dir/java.cmd"
            else java_cmd "$(abs_dir "$dir")" | xargs printf '%q '; echo; fi ;;
        -h|--help|help) usage ;;
        *) usage >&2; exit 2 ;;
    esac
}

main "$@"
