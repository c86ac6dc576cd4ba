"""Every setting of every command in one table (datasette's ``SETTINGS``), and the one way
they are read.

A *setting* is what a deployment configures (an interface, a broker, a truststore, a bound);
it can come from a command-line flag, a ``TLSDIAG_<NAME>`` environment variable or a config
file, in that order of precedence, before its default.  What one invocation chooses (input
files, ``--format``, ``--once``) stays a plain option of its command.

Config file: TOML, or JSON when the name ends in ``.json``.  Keys sit at the top level (every
command that has the setting takes it) or in a table named after a command (``[sensor]``,
``[analyzer]``, ``[diagnose]``, ``[watch]``, ``[summarize]``, ``[tail]``), which only that
command reads -- except ``[diagnose]``, whose settings (role, local nets, truststores...) the
sensor, the analyzer and ``watch`` read too, before their own table; ``-`` and ``_`` are the
same in a key.  One rule for every command: a key that
is no setting, a table that is no command, or a value that does not parse is an error -- one
line naming the file and the key.  A setting another command uses is accepted and ignored
(one file can serve the sensor and the analyzer of a host).

Defaults are not written here when a library type already declares them: a :class:`FieldDefault`
reads the default of a dataclass field (``SensorConfig``, ``PublisherConfig``,
``AnalyzerConfig``, ``DiagnoseConfig``) when a command needs it, so each default exists once --
and so the sensor command never imports the analyzer (the sensor image does not ship it).
"""
from __future__ import annotations

import argparse
import importlib
import inspect
import ipaddress
import json
import re
import os
import tomllib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import MISSING, dataclass, fields, is_dataclass
from typing import Any
from urllib.parse import urlsplit

from proto import topics
from proto.direction import ConfigError, parse_local_nets, parse_role, split_list
from proto.text import one_line

__all__ = ["ConfigError", "Setting", "SETTINGS", "COMMANDS", "Values", "add_arguments", "load",
           "field_default", "env_name"]


@dataclass(frozen=True)
class FieldDefault:
    """The default of field ``name`` of the dataclass ``module:cls`` (or of parameter ``name``
    of the callable ``module:cls``), read when needed, optionally converted (``spool_max_mb``
    is ``PublisherConfig.spool_max_bytes >> 20``)."""
    module: str
    cls: str
    name: str
    convert: Callable[[Any], Any] | None = None

    def resolve(self) -> Any:
        v = field_default(getattr(importlib.import_module(self.module), self.cls), self.name)
        return self.convert(v) if self.convert else v


def field_default(cls: Any, name: str) -> Any:
    """The default of dataclass field ``name`` of ``cls``, or of parameter ``name`` of the
    callable ``cls`` (the one place it is written)."""
    if not is_dataclass(cls):
        p = inspect.signature(cls).parameters[name]
        if p.default is inspect.Parameter.empty:
            raise KeyError("%s(%s) has no default" % (cls.__name__, name))
        return p.default
    for f in fields(cls):
        if f.name == name:
            if f.default is not MISSING:
                return f.default
            if f.default_factory is not MISSING:       # pragma: no cover - none so far
                return f.default_factory()
            raise KeyError("%s.%s has no default" % (cls.__name__, name))
    raise KeyError("%s has no field %s" % (cls.__name__, name))


# -- value parsers: text (env, file, flag) or an already typed value (file) -> typed value -----

def _text(v: object) -> str:
    if isinstance(v, (dict, list, tuple)):
        raise ValueError("must be a single value, not %r" % (v,))
    return str(v).strip()


def p_str(v: object) -> str | None:
    t = _text(v)
    return t or None


def p_int(lo: int, hi: int) -> Callable[[object], int]:
    def parse(v: object) -> int:
        if isinstance(v, bool):
            raise ValueError("must be an integer, not %r" % (v,))
        try:
            n = int(_text(v))
        except ValueError:
            raise ValueError("must be an integer, not %r" % (v,)) from None
        if not lo <= n <= hi:
            raise ValueError("must be between %d and %d, not %d" % (lo, hi, n))
        return n
    return parse


def p_float(lo: float, hi: float) -> Callable[[object], float]:
    def parse(v: object) -> float:
        if isinstance(v, bool):
            raise ValueError("must be a number, not %r" % (v,))
        try:
            x = float(_text(v))
        except ValueError:
            raise ValueError("must be a number, not %r" % (v,)) from None
        if not lo <= x <= hi:
            raise ValueError("must be between %g and %g, not %g" % (lo, hi, x))
        return x
    return parse


_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def p_bool(v: object) -> bool:
    if isinstance(v, bool):
        return v
    t = _text(v).lower()
    if t in _TRUE:
        return True
    if t in _FALSE:
        return False
    raise ValueError("must be true or false, not %r" % (v,))


def p_choice(*choices: str) -> Callable[[object], str]:
    def parse(v: object) -> str:
        t = _text(v).lower()
        if t not in choices:
            raise ValueError("must be one of %s, not %r" % (", ".join(choices), v))
        return t
    return parse


_HOST_NAME = re.compile(r"(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
                        r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.?")


def p_host(v: str) -> str:
    """An IP address or a host name (it goes into a BPF ``host`` term: nothing else may)."""
    t = _text(v)
    try:
        return str(ipaddress.ip_address(t))
    except ValueError:
        pass
    if not _HOST_NAME.fullmatch(t):
        raise ValueError("not an IP address or host name: %r" % (t,))
    return t


def p_list(item: Callable[[str], object] = str) -> Callable[[object], tuple]:
    """A list: repeated flags, a TOML array, or comma/space separated text (env)."""
    def parse(v: object) -> tuple:
        if isinstance(v, str):
            v = v.replace(" ", ",")
        out = []
        for x in split_list(v):
            try:
                out.append(item(x))
            except ValueError:
                raise ValueError("%r is not valid here" % (x,)) from None
        return tuple(out)
    return parse


def p_port(v: str) -> int:
    return p_int(1, 65535)(v)


def p_http_url(v: object) -> str:
    """An http(s) URL with a host."""
    t = _text(v)
    try:
        u = urlsplit(t)
        ok = u.scheme in ("http", "https") and bool(u.hostname)
        u.port                                  # raises on a bad port
    except ValueError:
        ok = False
    if not ok:
        raise ValueError("must be an http:// or https:// URL, not %r" % (t,))
    return t


def p_optional(parse: Callable[[object], Any]) -> Callable[[object], Any]:
    """``parse``, but an empty value or ``none`` means None (e.g. metrics_port = "none")."""
    def opt(v: object) -> Any:
        if v is None or (isinstance(v, str) and v.strip().lower() in ("", "none", "off")):
            return None
        return parse(v)
    return opt


def _wrap(parse: Callable[[object], Any]) -> Callable[[object], Any]:
    """Library parsers raise ConfigError with their own message: same contract as ValueError."""
    def call(v: object) -> Any:
        try:
            return parse(v)
        except ConfigError as e:
            raise ValueError(str(e)) from None
    return call


# -- the table ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class Setting:
    name: str
    default: object
    help: str
    parse: Callable[[object], Any] = p_str
    #: the command-line flag (default ``--`` + name with dashes); a list setting's flag is
    #: repeatable and named in the singular
    flag: str | None = None
    short: str | None = None
    metavar: str | None = None
    repeat: bool = False
    #: a boolean whose flag sets the opposite of the default (``--no-warnings``)
    negate: bool = False
    secret: bool = False
    #: testing knobs: not in --help
    hidden: bool = False

    @property
    def option(self) -> str:
        return self.flag or "--" + self.name.replace("_", "-")


def env_name(name: str) -> str:
    return "TLSDIAG_" + name.upper()


def _L(name: str) -> FieldDefault:
    """A live-capture default: LiveCapture's own."""
    return FieldDefault("sensor.live", "LiveCapture", name)


def _F(name: str, convert: Callable[[Any], Any] | None = None) -> FieldDefault:
    """A flow-table default: the FlowTable's own (the engine's source, both builds)."""
    return FieldDefault("cext._flows_py", "FlowTable", name, convert)


def _P(name: str, convert: Callable[[Any], Any] | None = None) -> FieldDefault:
    return FieldDefault("sensor.publisher", "PublisherConfig", name, convert)


def _A(name: str) -> FieldDefault:
    return FieldDefault("analyzer.service", "AnalyzerConfig", name)


def _AM(name: str) -> FieldDefault:
    """An Alertmanager client default: the constructor's own."""
    return FieldDefault("analyzer.service.alertmanager", "Alertmanager", name)


def _D(name: str) -> FieldDefault:
    return FieldDefault("analyzer.config", "DiagnoseConfig", name)


SETTINGS: tuple[Setting, ...] = (
    # -- capture -------------------------------------------------------------------------------
    Setting("interface", None, "network interface to capture on", short="-i", metavar="IF"),
    Setting("netns", None, "open the capture inside this network namespace (/run/netns/NAME); "
            "Kafka and metrics stay in the sensor's own", metavar="NAME"),
    Setting("ports", (), "TCP port to capture (repeatable; none = all TCP)",
            p_list(p_port), flag="--port", repeat=True, metavar="PORT"),
    Setting("hosts", (), "host to capture, to or from (repeatable; none = all)",
            p_list(p_host), flag="--host", repeat=True, metavar="HOST"),
    Setting("bpf", None, "extra BPF expression, and'ed with the ports and hosts", metavar="EXPR"),
    Setting("backend", "auto", "capture backend: ebpf (the in-kernel handshake filter: only "
            "handshakes and what the summary needs after them reach user space), pcap "
            "(libpcap with a BPF filter), auto (ebpf, else pcap with one line saying why)",
            p_choice("auto", "ebpf", "pcap")),
    Setting("ebpf_flows", FieldDefault("sensor.ebpf.capture", "EbpfCapture", "map_size"),
            "bound on the connections the eBPF filter follows (its LRU map)",
            p_int(1024, 16_777_216)),
    Setting("snaplen", _L("snaplen"), "capture snap length in bytes",
            p_int(64, 262_144)),
    Setting("buffer_mb", _L("buffer_mb"), "kernel capture buffer in MiB",
            p_int(1, 4096)),
    Setting("fanout_group", None, "PACKET_FANOUT group id shared by all capture workers",
            p_optional(p_int(0, 0xFFFF))),
    Setting("fanout_mode", _L("fanout_mode"), "how fanout spreads packets "
            "over workers: hash | lb | cpu | rollover | rnd",
            p_choice("hash", "lb", "cpu", "rollover", "rnd")),
    Setting("workers", 1, "capture processes sharing the interface "
            "through PACKET_FANOUT (one per core at most)", p_int(1, 64)),
    # -- endpoint hints ------------------------------------------------------------------------
    Setting("endpoint_hints", False, "join what the endpoints' own OpenSSL reported (verify "
            "result, errors, alerts; eBPF uprobes on its exported functions, needs "
            "CAP_SYS_ADMIN for their perf events) to each connection's summary; off, or "
            "unavailable, summaries are wire-only", p_bool, negate=True),
    Setting("endpoint_hints_libraries", (), "another OpenSSL to hook for endpoint hints, besides "
            "the system's libcrypto: a libcrypto, a libssl or a binary with OpenSSL linked in "
            "(repeatable; globs allowed)", p_list(), flag="--endpoint-hints-library",
            repeat=True, metavar="PATH"),
    # -- flow table ----------------------------------------------------------------------------
    Setting("idle_timeout", _F("idle_timeout"), "seconds of silence before an "
            "open connection is summarized", p_float(0.001, 86_400.0), metavar="S"),
    Setting("max_flows", _F("max_flows"), "bound on tracked TCP connections "
            "(the oldest is summarized and evicted beyond it)", p_int(1, 100_000_000)),
    Setting("reassembly_memcap_mb", _F("max_buffered", lambda b: b >> 20), "bound in MiB on "
            "the bytes the tracked connections of one process hold for reassembly (incomplete "
            "records and handshake messages, out-of-order segments, certificates kept); beyond "
            "it the connections holding the most give up what they hold (a gap, weird "
            "reassembly_memcap)",
            p_int(1, 1_048_576), metavar="MIB"),
    # -- where the gateway is ------------------------------------------------------------------
    Setting("role", None, "gateway role of the capturing host: router | message-processor",
            _wrap(parse_role)),
    Setting("local_nets", (), "CIDR of the gateway's own addresses (repeatable): a connection "
            "to one is northbound, one from one southbound", _wrap(parse_local_nets),
            flag="--local-net", repeat=True, metavar="CIDR"),
    Setting("sensor_id", None, "id stamped on every summary (default HOSTNAME/INTERFACE)",
            metavar="ID"),
    # -- diagnosis -----------------------------------------------------------------------------
    Setting("truststore", None, "PEM bundle or directory of trusted roots, both directions",
            metavar="PEM"),
    Setting("truststore_northbound", None, "truststore for northbound connections (client "
            "certificates the Router checks)", metavar="PEM"),
    Setting("truststore_southbound", None, "truststore for southbound connections (backend "
            "certificates the MP checks)", metavar="PEM"),
    Setting("targets", (), "expected certificate name of a server, used when the client sends "
            "no SNI (repeatable)", lambda v: v, flag="--target", repeat=True,
            metavar="HOST:PORT=NAME"),
    Setting("expiry_warning_days", _D("expiry_warning_days"), "warn about "
            "certificates that expire within this many days", p_int(0, 3650), metavar="N"),
    Setting("profile_max_servers", _D("profile_max_servers"), "bound on "
            "learned server profiles (LRU)", p_int(1, 10_000_000)),
    Setting("profile_min_successes", _D("profile_min_successes"), "successful "
            "handshakes a server profile needs before it is used", p_int(1, 1_000_000)),
    Setting("warnings", _A("warnings"), "also report warnings (expiring or invalid "
            "certificates on successful handshakes); off: failures only", p_bool,
            flag="--no-warnings",
            negate=True),
    # -- Kafka ---------------------------------------------------------------------------------
    Setting("kafka", None, "Kafka bootstrap servers", metavar="HOST:PORT[,HOST:PORT...]"),
    *(Setting("topic_" + name, t.name, "topic: %s%s" % (t.key, " (compacted)" if t.compacted
                                                          else ""), metavar="TOPIC")
      for name, t in (("handshakes", topics.HANDSHAKES), ("certs", topics.CERTS),
                      ("diagnoses", topics.DIAGNOSES), ("incidents", topics.INCIDENTS),
                      ("profiles", topics.PROFILES), ("dlq", topics.DLQ))),
    Setting("kafka_wait_s", 30.0, "at start, how long to wait for Kafka to answer before giving "
            "up (exit status 2)", p_float(0.0, 86_400.0), metavar="S"),
    Setting("stop_grace_s", 4.0, "after SIGTERM, how long the last batch may take to commit "
            "before the analyzer exits without it (it is consumed again at the next start)",
            p_float(0.1, 600.0), metavar="S"),
    Setting("compression", "auto", "producer compression: "
            "zstd | lz4 | gzip | none | auto (the best one installed)",
            p_choice("zstd", "lz4", "gzip", "none", "auto")),
    # -- sensor publisher ----------------------------------------------------------------------
    Setting("spool_dir", None, "spool directory while Kafka is away (replayed in order when it "
            "returns, also after a restart; default $STATE_DIRECTORY or $TMPDIR/tlsdiag-spool, "
            "per sensor id)", metavar="DIR"),
    Setting("spool_max_mb", _P("spool_max_bytes", lambda b: b >> 20), "spool bound in MiB; "
            "beyond it summaries are dropped (counted)", p_int(1, 1 << 20)),
    Setting("queue_max", _P("queue_max"), "in-memory publish queue bound "
            "(summaries)", p_int(1, 10_000_000)),
    # -- analyzer service ----------------------------------------------------------------------
    Setting("group", _A("group"), "Kafka consumer group of the analyzers"),
    Setting("instance", _A("instance"), "stable id of this analyzer instance "
            "(its transactional id)"),
    Setting("exactly_once", _A("exactly_once"), "outputs and offsets in one "
            "Kafka transaction per batch; off: flush, then commit (at least once)", p_bool,
            flag="--at-least-once", negate=True),
    Setting("max_records", _A("max_records"), "records per batch",
            p_int(1, 1_000_000)),
    Setting("poll_timeout_ms", _A("poll_timeout_ms"), "consumer poll timeout",
            p_int(1, 600_000)),
    Setting("cert_wait", _A("cert_wait"), "seconds a summary waits for its "
            "certificates on the certificates topic", p_float(0.0, 600.0), metavar="S"),
    Setting("cert_store", _A("cert_store"), "certificates kept in memory (LRU)",
            p_int(1, 100_000_000)),
    Setting("profile_snapshot_s", _A("profile_snapshot_s"), "seconds between "
            "server-profile snapshots to the profiles topic", p_float(0.0, 86_400.0),
            metavar="S"),
    Setting("incident_update_s", _A("incident_update_s"), "seconds between "
            "'updated' events of an open incident", p_float(0.0, 86_400.0), metavar="S"),
    Setting("incident_resolve_successes", _A("incident_resolve_successes"),
            "successes after the last failure that resolve an incident", p_int(1, 1_000_000)),
    Setting("incident_resolve_quiet_s", _A("incident_resolve_quiet_s"),
            "seconds without a failure after which an incident resolves anyway",
            p_float(0.0, 10_000_000.0), metavar="S"),
    Setting("incident_resolve_hold_s", _A("incident_resolve_hold_s"),
            "resolve only once the last failure is this old (data time; 0 = at once)",
            p_float(0.0, 10_000_000.0), metavar="S"),
    Setting("correlation_window_s", _A("correlation_window_s"), "seconds within "
            "which failures of one server are one incident", p_float(0.0, 86_400.0),
            metavar="S"),
    Setting("webhook_url", None, "POST incident events as JSON to this URL",
            p_optional(p_http_url), secret=True, metavar="URL"),
    Setting("webhook_secret_file", None, "file holding the HMAC secret of the webhook "
            "signature (or TLSDIAG_WEBHOOK_SECRET)", metavar="FILE"),
    Setting("alertmanager_urls", (), "Prometheus Alertmanager to post incidents to as alerts "
            "(API v2, URL/api/v2/alerts; repeatable: every member of an HA cluster)",
            p_list(p_http_url), flag="--alertmanager-url", repeat=True, secret=True,
            metavar="URL"),
    Setting("alertmanager_resend_s", _AM("resend_s"), "seconds between re-posts of the alerts "
            "of open incidents (each expires 4 re-sends after its last post)",
            p_float(1.0, 86_400.0), metavar="S"),
    Setting("alertmanager_timeout_s", _AM("timeout_s"), "seconds one POST to Alertmanager may "
            "take", p_float(0.1, 600.0), metavar="S"),
    Setting("batch_delay_ms", 0, "testing: pause inside each batch", p_int(0, 600_000),
            hidden=True),
    Setting("state_delay_ms", 0, "testing: pause before a batch's incident state",
            p_int(0, 600_000), hidden=True),
    # -- operations ----------------------------------------------------------------------------
    Setting("metrics_port", None, "serve Prometheus metrics on this port (none = off)",
            p_optional(p_int(0, 65535))),
    Setting("metrics_host", "0.0.0.0", "address of the metrics listener"),
    Setting("stats_interval", 60, "seconds between stats log "
            "lines", p_int(1, 86_400), metavar="S"),
)

BY_NAME: Mapping[str, Setting] = {s.name: s for s in SETTINGS}
assert len(BY_NAME) == len(SETTINGS)

_CAPTURE = ("interface", "netns", "backend", "ebpf_flows", "ports", "hosts", "bpf", "snaplen",
            "buffer_mb", "endpoint_hints", "endpoint_hints_libraries")
_FLOWS = ("idle_timeout", "max_flows", "reassembly_memcap_mb")
_DIRECTION = ("role", "local_nets")
_DIAGNOSE = _DIRECTION + ("truststore", "truststore_northbound", "truststore_southbound",
                          "targets", "expiry_warning_days", "profile_max_servers",
                          "profile_min_successes", "warnings")
_TOPICS = ("topic_handshakes", "topic_certs", "topic_diagnoses", "topic_incidents",
           "topic_profiles", "topic_dlq")

#: command -> its settings, in --help order
COMMANDS: Mapping[str, tuple[str, ...]] = {
    "summarize": _FLOWS,
    "diagnose": _DIAGNOSE,
    "watch": _CAPTURE + _FLOWS + _DIAGNOSE,
    "sensor": _CAPTURE + ("fanout_group", "fanout_mode", "workers") + _FLOWS + _DIRECTION
    + ("sensor_id", "kafka", "topic_handshakes", "topic_certs", "compression", "spool_dir",
       "spool_max_mb", "queue_max", "metrics_port", "metrics_host", "stats_interval"),
    "analyzer": ("kafka", "kafka_wait_s", "stop_grace_s", "group", "instance") + _DIAGNOSE
    + _TOPICS + (
        "exactly_once", "max_records", "poll_timeout_ms", "cert_wait", "cert_store",
        "profile_snapshot_s", "incident_update_s", "incident_resolve_successes",
        "incident_resolve_quiet_s", "incident_resolve_hold_s", "correlation_window_s",
        "webhook_url", "webhook_secret_file", "alertmanager_urls", "alertmanager_resend_s",
        "alertmanager_timeout_s", "metrics_port", "metrics_host", "stats_interval",
        "batch_delay_ms", "state_delay_ms"),
    "tail": ("kafka", "topic_incidents"),
}
#: the commands that read the [diagnose] table of a config file too
DIAGNOSING = frozenset({"diagnose", "watch", "sensor", "analyzer"})
#: a command's own default where it differs from the table's
COMMAND_DEFAULTS: Mapping[str, Mapping[str, object]] = {
    "watch": {"idle_timeout": 30.0},
}
#: settings a command cannot run without
REQUIRED: Mapping[str, tuple[str, ...]] = {
    "sensor": ("interface", "kafka"),
    "watch": ("interface",),
    "analyzer": ("kafka",),
    "tail": ("kafka",),
}
assert all(n in BY_NAME for names in COMMANDS.values() for n in names)


def add_arguments(parser: argparse.ArgumentParser, command: str,
                  group_title: str = "settings (also TLSDIAG_<NAME> in the environment, "
                                     "or NAME in the --config file)") -> None:
    """The command's settings as flags (their values stay None unless given), plus --config."""
    g = parser.add_argument_group(group_title)
    g.add_argument("--config", metavar="FILE", help="TOML or JSON settings file (keys at the top "
                   "level or in a [%s] table)" % command)
    for name in COMMANDS[command]:
        s = BY_NAME[name]
        names = [s.option] + ([s.short] if s.short else [])
        default = default_of(command, name)
        if s.hidden:
            text = argparse.SUPPRESS
        else:
            shown = "" if default in (None, (), "") or s.negate else " (default %s)" % (
                ", ".join(map(str, default)) if isinstance(default, tuple) else default)
            text = "%s%s [%s]" % (s.help, shown, env_name(name))
            if s.negate:        # the flag flips the setting: say which way
                text = "turns %s: %s [%s, %s by default]" % (
                    "off" if default else "on", s.help, env_name(name),
                    "on" if default else "off")
        if s.negate:
            g.add_argument(*names, dest=name, action="store_const", const=not default,
                           default=None, help=text)
        elif s.repeat:
            g.add_argument(*names, dest=name, action="append", default=None,
                           metavar=s.metavar, help=text)
        else:
            number = isinstance(default, (int, float)) and not isinstance(default, bool)
            g.add_argument(*names, dest=name, default=None,
                           metavar=s.metavar or ("N" if number else None), help=text)


def default_of(command: str, name: str) -> Any:
    d = COMMAND_DEFAULTS.get(command, {}).get(name, BY_NAME[name].default)
    return d.resolve() if isinstance(d, FieldDefault) else d


class Values(Mapping[str, Any]):
    """The effective settings of one command: name -> typed value."""

    def __init__(self, command: str, values: Mapping[str, Any],
                 sources: Mapping[str, str]) -> None:
        self.command = command
        self._v = dict(values)
        #: name -> where the value came from: "default", "file", "env", "flag"
        self.sources = dict(sources)

    def __getitem__(self, name: str) -> Any:
        return self._v[name]

    def __iter__(self):
        return iter(self._v)

    def __len__(self) -> int:
        return len(self._v)

    def pick(self, cls: type, **extra: Any) -> Any:
        """``cls(**values)`` for the fields of dataclass ``cls`` these settings hold."""
        names = {f.name for f in fields(cls)}
        kw = {k: v for k, v in self._v.items() if k in names}
        kw.update(extra)
        return cls(**kw)

    def describe(self) -> dict[str, object]:
        """The effective settings for the start-up log line, secrets masked."""
        out: dict[str, object] = {}
        for k, v in self._v.items():
            if BY_NAME[k].secret and v:
                v = [_mask(str(x)) for x in v] if isinstance(v, tuple) else _mask(str(v))
            elif isinstance(v, tuple):
                v = [str(x) for x in v]
            out[k] = v
        return out


def _mask(url: str) -> str:
    from urllib.parse import urlsplit, urlunsplit
    try:
        u = urlsplit(url)
        netloc = u.hostname or ""
        if u.port:
            netloc += ":%d" % u.port
    except ValueError:                  # (not a URL: nothing of it is shown)
        return "***"
    return urlunsplit((u.scheme, netloc, u.path, "***" if u.query else "", ""))


#: the largest config file read (a settings file is a few kB)
MAX_CONFIG_FILE = 1 << 20


def read_file(path: str) -> dict[str, dict[str, object]]:
    """``{section: {name: value}}`` of a config file (``""`` = top level); every key checked."""
    try:
        with open(path, "rb") as fh:
            raw = fh.read(MAX_CONFIG_FILE + 1)
    except OSError as e:
        raise ConfigError("cannot read config file %s: %s" % (path, e.strerror)) from None
    if len(raw) > MAX_CONFIG_FILE:      # (not its first MiB read as if it were the whole)
        raise ConfigError("config file %s is larger than %d bytes" % (path, MAX_CONFIG_FILE))
    try:
        data = json.loads(raw) if path.endswith(".json") else tomllib.loads(raw.decode("utf-8"))
    except (ValueError, UnicodeDecodeError, RecursionError) as e:
        raise ConfigError("config file %s is not valid %s: %s" % (
            path, "JSON" if path.endswith(".json") else "TOML",
            "nested too deeply" if isinstance(e, RecursionError) else one_line(e))) from None
    if not isinstance(data, dict):
        raise ConfigError("config file %s must hold a table" % path)
    out: dict[str, dict[str, object]] = {"": {}}
    for key, value in data.items():
        k = str(key).replace("-", "_")
        if isinstance(value, dict) and k not in BY_NAME:
            if k not in COMMANDS:
                raise ConfigError("config file %s: [%s] is no command's table (%s)" % (
                    path, key, ", ".join(COMMANDS)))
            section = out.setdefault(k, {})
            for skey, svalue in value.items():
                sk = str(skey).replace("-", "_")
                if sk not in COMMANDS[k]:
                    raise ConfigError("config file %s: unknown setting %r in [%s]" % (
                        path, skey, key))
                section[sk] = svalue
        elif k in BY_NAME:
            out[""][k] = value
        else:
            raise ConfigError("config file %s: unknown setting %r" % (path, key))
    return out


def load(command: str, args: argparse.Namespace | Mapping[str, object] | None = None,
         environ: Mapping[str, str] | None = None, config_file: str | None = None,
         check_required: bool = True) -> Values:
    """Merge flag > environment > config file > default for ``command``'s settings, parse and
    validate each; raises :class:`ConfigError` with one line naming the flag, variable or key."""
    names = COMMANDS[command]
    env = os.environ if environ is None else environ
    given = vars(args) if isinstance(args, argparse.Namespace) else dict(args or {})
    if config_file is None:
        config_file = given.get("config")  # type: ignore[assignment]
    values: dict[str, Any] = {n: default_of(command, n) for n in names}
    sources = {n: "default" for n in names}
    raw: dict[str, tuple[object, str]] = {}
    if config_file:
        sections = read_file(str(config_file))
        for section in ("", "diagnose", command) if command in DIAGNOSING else ("", command):
            for k, v in sections.get(section, {}).items():
                if k in values:
                    raw[k] = (v, "config file %s: %s" % (config_file, k))
    for n in names:
        v = env.get(env_name(n))
        if v is not None and v != "":
            raw[n] = (v, env_name(n))
    for n in names:
        v = given.get(n)
        if v is not None and not (isinstance(v, list) and not v):
            raw[n] = (v, BY_NAME[n].option)
    for n, (v, where) in raw.items():
        s = BY_NAME[n]
        try:
            values[n] = s.parse(v)
            if values[n] is None and s.parse is p_str and default_of(command, n) is not None:
                # (blank text: not a way to drop a default -- a consumer group, a topic)
                raise ValueError("must not be empty")
        except ValueError as e:
            raise ConfigError("%s: %s" % (where, e)) from None
        sources[n] = where
    if check_required:
        for n in REQUIRED.get(command, ()):
            if values.get(n) in (None, "", ()):
                raise ConfigError("%s is required (or %s, or %s in the config file)" % (
                    BY_NAME[n].option, env_name(n), n))
    return Values(command, values, sources)


def diagnose_values(values: Values) -> dict[str, object]:
    """The values :func:`analyzer.config.build_config` takes, from a command's settings."""
    return {k: values[k] for k in ("role", "local_nets", "truststore", "truststore_northbound",
                                   "truststore_southbound", "targets", "expiry_warning_days",
                                   "profile_max_servers", "profile_min_successes")
            if k in values}


def flow_table(values: Mapping[str, Any]) -> dict[str, Any]:
    """The flow table's limits (``FlowTable`` keyword arguments) from a command's settings."""
    return {"max_flows": values["max_flows"], "idle_timeout": values["idle_timeout"],
            "max_buffered": values["reassembly_memcap_mb"] << 20}


def help_lines(command: str) -> Iterable[str]:
    for n in COMMANDS[command]:
        s = BY_NAME[n]
        if not s.hidden:
            yield "%s (%s, %s): %s" % (n, s.option, env_name(n), s.help)

