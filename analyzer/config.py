"""Diagnosis settings: one SETTINGS table, loaded into a frozen dataclass.

Precedence: CLI flag, then ``TLSDIAG_*`` environment variable, then a TOML/JSON config file, then the
default. Every value is validated here; a bad value raises :class:`ConfigError` with a one-line message.
"""

from __future__ import annotations

import json
import logging
import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Mapping, NamedTuple

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from proto.direction import (ROLES, ConfigError, IPNetwork, normalize_hostport, parse_local_nets,
                             parse_role, split_list)

log = logging.getLogger(__name__)


#: Bounds: a truststore never holds more certificates than this, a PEM file is never read past this size.
MAX_TRUSTSTORE_CERTS = 10_000
MAX_PEM_BYTES = 32 * 1024 * 1024


class Setting(NamedTuple):
    name: str
    default: object
    help: str


#: The one table of settings (datasette style). Env var = ``TLSDIAG_`` + upper-case name.
SETTINGS: tuple[Setting, ...] = (
    Setting("role", None, "gateway role of the capturing host: router | message-processor"),
    Setting("local_nets", (), "CIDRs of the gateway's own addresses (comma separated in env)"),
    Setting("truststore", None, "PEM bundle or directory of trusted roots, both directions"),
    Setting("truststore_northbound", None, "truststore for northbound (client certs checked by the router)"),
    Setting("truststore_southbound", None, "truststore for southbound (backend certs checked by the MP)"),
    Setting("targets", (), "HOST:PORT=NAME: expected certificate name for a server (comma separated in env)"),
    Setting("expiry_warning_days", 30, "warn about certificates expiring within this many days"),
    Setting("profile_max_servers", 10_000, "bound on learned server profiles (LRU)"),
    Setting("profile_min_successes", 1, "successful handshakes a profile needs before it is used"),
)
SETTING_NAMES = frozenset(s.name for s in SETTINGS)


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

    def truststore_for(self, direction: str) -> TrustStore | None:
        """The truststore for a direction, falling back to the default one."""
        return self.truststores.get(direction) or self.truststores.get("default")

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
            if p.is_dir():
                log.warning("truststore: skipping %s (no PEM certificates)", f)
                continue
            raise ConfigError(f"truststore {f} holds no PEM certificates") from None
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


def read_config_file(path: str) -> dict[str, object]:
    """A TOML (``.toml``) or JSON file with the SETTINGS names as keys (a ``[diagnose]`` table is accepted)."""
    p = Path(path)
    try:
        raw = p.read_bytes()
    except OSError as e:
        raise ConfigError(f"cannot read config file {path}: {e.strerror}") from None
    try:
        if p.suffix.lower() == ".json":
            data = json.loads(raw)
        else:
            data = tomllib.loads(raw.decode("utf-8"))
    except (ValueError, UnicodeDecodeError) as e:
        raise ConfigError(f"config file {path} is not valid {'JSON' if p.suffix == '.json' else 'TOML'}: {e}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold a table/object")
    if isinstance(data.get("diagnose"), dict):
        data = data["diagnose"]
    out: dict[str, object] = {}
    for k, v in data.items():
        key = str(k).replace("-", "_")
        if key not in SETTING_NAMES:
            raise ConfigError(f"config file {path}: unknown setting {k!r}")
        out[key] = v
    return out


def env_settings(environ: Mapping[str, str]) -> dict[str, object]:
    out: dict[str, object] = {}
    for s in SETTINGS:
        v = environ.get("TLSDIAG_" + s.name.upper())
        if v is not None and v != "":
            out[s.name] = v
    return out


def build_config(
    cli: Mapping[str, object] | None = None,
    environ: Mapping[str, str] | None = None,
    config_file: str | None = None,
) -> DiagnoseConfig:
    """Merge CLI > env > file > defaults, validate, and load the truststores."""
    merged: dict[str, object] = {s.name: s.default for s in SETTINGS}
    if config_file:
        merged.update(read_config_file(config_file))
    merged.update(env_settings(os.environ if environ is None else environ))
    for k, v in (cli or {}).items():
        if k not in SETTING_NAMES:
            raise ConfigError(f"unknown setting {k!r}")
        if v is None or (isinstance(v, (list, tuple)) and not v):
            continue
        merged[k] = v
    stores: dict[str, TrustStore] = {}
    for key, name in (("default", "truststore"), ("northbound", "truststore_northbound"),
                      ("southbound", "truststore_southbound")):
        if merged.get(name):
            stores[key] = load_truststore(str(merged[name]))
    cfg = DiagnoseConfig(
        role=parse_role(merged["role"]),
        local_nets=parse_local_nets(merged["local_nets"]),
        truststores=stores,
        targets=parse_targets(merged["targets"]),
        expiry_warning_days=parse_int("expiry_warning_days", merged["expiry_warning_days"], 0, 3650),
        profile_max_servers=parse_int("profile_max_servers", merged["profile_max_servers"], 1, 10_000_000),
        profile_min_successes=parse_int("profile_min_successes", merged["profile_min_successes"], 1, 1_000_000),
    )
    log.info("diagnose config: %s", cfg.describe())
    return cfg


def default_config(**overrides: object) -> DiagnoseConfig:
    """Defaults with keyword overrides already in their final types (for library users and tests)."""
    return DiagnoseConfig(**overrides)  # type: ignore[arg-type]


def iter_settings_help() -> Iterable[str]:
    for s in SETTINGS:
        yield f"{s.name} (TLSDIAG_{s.name.upper()}, default {s.default!r}): {s.help}"
