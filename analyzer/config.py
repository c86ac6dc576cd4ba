"""The diagnosis engine's configuration: a frozen dataclass and the loading of truststores.

Where the values come from (flags, ``TLSDIAG_*`` environment, config file) is the application's
business (``tlsdiag/settings.py``); :func:`build_config` takes plain values, validates them and
loads the truststores.  A bad value raises :class:`ConfigError` with a one-line message.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from proto.direction import (ConfigError, IPNetwork, normalize_hostport, parse_local_nets, parse_role,
                             split_list)

log = logging.getLogger(__name__)


#: Bounds: a truststore never holds more certificates than this, a PEM file is never read past this size.
MAX_TRUSTSTORE_CERTS = 10_000
MAX_PEM_BYTES = 32 * 1024 * 1024


@dataclass(frozen=True)
class TrustStore:
    """Trusted certificates loaded from one PEM bundle or directory."""

    source: str
    certs: tuple[x509.Certificate, ...]

    def __len__(self) -> int:
        return len(self.certs)


@dataclass(frozen=True)
class DiagnoseConfig:
    role: str | None = None
    local_nets: tuple[IPNetwork, ...] = ()
    #: keys: "default", "northbound", "southbound"
    truststores: Mapping[str, TrustStore] = field(default_factory=dict)
    #: "host:port" -> expected certificate name
    targets: Mapping[str, str] = field(default_factory=dict)
    expiry_warning_days: int = 30
    profile_max_servers: int = 10_000
    profile_min_successes: int = 1

    def describe(self) -> dict[str, object]:
        """The effective config, for logging and the report (no secrets exist here)."""
        return {
            "role": self.role,
            "local_nets": [str(n) for n in self.local_nets],
            "truststores": {k: f"{v.source} ({len(v)} certificates)" for k, v in self.truststores.items()},
            "targets": dict(self.targets),
            "expiry_warning_days": self.expiry_warning_days,
            "profile_max_servers": self.profile_max_servers,
            "profile_min_successes": self.profile_min_successes,
        }


# ---------------------------------------------------------------------------------------------- parsing


def parse_targets(value: object) -> dict[str, str]:
    if isinstance(value, Mapping):
        items = [f"{k}={v}" for k, v in value.items()]
    else:
        items = split_list(value)
    out: dict[str, str] = {}
    for item in items:
        hp, sep, name = item.partition("=")
        name = name.strip().lower().rstrip(".")
        if not sep or not name:
            raise ConfigError(f"target {item!r} must look like HOST:PORT=NAME")
        out[normalize_hostport(hp)] = name
    return out


def parse_int(name: str, value: object, lo: int, hi: int) -> int:
    try:
        n = int(str(value).strip())
    except ValueError:
        raise ConfigError(f"{name} must be an integer, not {value!r}") from None
    if not lo <= n <= hi:
        raise ConfigError(f"{name} must be between {lo} and {hi}, not {n}")
    return n


def load_truststore(path: str) -> TrustStore:
    """Load a PEM bundle, or every ``*.pem``/``*.crt``/``*.cer`` file of a directory."""
    p = Path(path)
    if p.is_dir():
        files = sorted(f for f in p.iterdir() if f.suffix.lower() in (".pem", ".crt", ".cer") and f.is_file())
        if not files:
            raise ConfigError(f"truststore directory {path} holds no .pem/.crt/.cer files")
    elif p.is_file():
        files = [p]
    elif p.exists():
        raise ConfigError(f"truststore {path} is not a file or a directory")
    else:
        raise ConfigError(f"truststore {path} does not exist")
    certs: list[x509.Certificate] = []
    seen: set[bytes] = set()
    for f in files:
        try:
            if f.stat().st_size > MAX_PEM_BYTES:
                raise ConfigError(f"truststore file {f} is larger than {MAX_PEM_BYTES} bytes")
            data = f.read_bytes()
        except OSError as e:
            raise ConfigError(f"cannot read truststore {f}: {e.strerror}") from None
        try:
            loaded = x509.load_pem_x509_certificates(data)
        except ValueError:
            why = _pem_problem(data)
            if p.is_dir():
                log.warning("truststore: skipping %s (%s)", f, why)
                continue
            raise ConfigError(f"truststore {f} {why}") from None
        for c in loaded:
            fp = c.public_bytes(serialization.Encoding.DER)
            if fp in seen:
                continue
            seen.add(fp)
            certs.append(c)
            if len(certs) > MAX_TRUSTSTORE_CERTS:
                raise ConfigError(f"truststore {path} holds more than {MAX_TRUSTSTORE_CERTS} certificates")
    if not certs:
        raise ConfigError(f"truststore {path} holds no certificates")
    return TrustStore(source=str(path), certs=tuple(certs))


def _pem_problem(data: bytes) -> str:
    """Why ``data`` gave no certificates: none in it, or which of its blocks does not read."""
    blocks = data.split(b"-----BEGIN CERTIFICATE-----")[1:]
    for i, block in enumerate(blocks, 1):
        try:
            x509.load_pem_x509_certificate(b"-----BEGIN CERTIFICATE-----" + block)
        except ValueError:
            return f"holds a PEM certificate that does not read (block {i} of {len(blocks)})"
    return "holds no PEM certificates"


#: the values :func:`build_config` takes (truststore paths: one per direction, or both)
VALUE_NAMES = frozenset({"role", "local_nets", "truststore", "truststore_northbound",
                         "truststore_southbound", "targets", "expiry_warning_days",
                         "profile_max_servers", "profile_min_successes"})


def build_config(values: Mapping[str, object] | None = None) -> DiagnoseConfig:
    """A validated config from plain values (strings, lists, or already typed), truststores
    loaded; absent or None values take the dataclass defaults."""
    merged: dict[str, object] = {}
    for k, v in (values or {}).items():
        if k not in VALUE_NAMES:
            raise ConfigError(f"unknown setting {k!r}")
        if v is None or (isinstance(v, (list, tuple)) and not v):
            continue
        merged[k] = v
    d = DiagnoseConfig()
    stores: dict[str, TrustStore] = {}
    for key, name in (("default", "truststore"), ("northbound", "truststore_northbound"),
                      ("southbound", "truststore_southbound")):
        if merged.get(name):
            stores[key] = load_truststore(str(merged[name]))
    cfg = DiagnoseConfig(
        role=parse_role(merged.get("role")),
        local_nets=parse_local_nets(merged.get("local_nets")),
        truststores=stores,
        targets=parse_targets(merged.get("targets")),
        expiry_warning_days=parse_int("expiry_warning_days",
                                      merged.get("expiry_warning_days", d.expiry_warning_days), 0, 3650),
        profile_max_servers=parse_int("profile_max_servers",
                                      merged.get("profile_max_servers", d.profile_max_servers), 1, 10_000_000),
        profile_min_successes=parse_int("profile_min_successes",
                                        merged.get("profile_min_successes", d.profile_min_successes), 1, 1_000_000),
    )
    log.info("diagnose config: %s", cfg.describe())
    return cfg
