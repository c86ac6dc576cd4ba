"""Tests for proto.names: IANA TLS name tables and never-raising lookups."""

from __future__ import annotations

import ast
import json
from enum import IntEnum
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from proto import names
from proto.history import (
    HISTORY_LETTERS,
    MAX_HISTORY,
    RECORD_HISTORY_LETTERS,
    history_letter,
    record_history_letter,
)
from proto.names import (
    ALERT_NAMES,
    CIPHER_NAMES,
    EXTENSION_NAMES,
    GREASE_VALUES,
    GROUP_NAMES,
    HANDSHAKE_NAMES,
    NON_IANA_CIPHER_NAMES,
    NON_IANA_EXTENSION_NAMES,
    NON_IANA_GROUP_NAMES,
    NON_IANA_HANDSHAKE_NAMES,
    NON_IANA_SIGALG_NAMES,
    SIGALG_NAMES,
    SSLV2_CIPHER_KINDS,
    AlertDescription,
    AlertLevel,
    CipherSuite,
    ClientCertificateType,
    ContentType,
    ECCurveType,
    ECPointFormat,
    ExtensionType,
    HandshakeType,
    HashAlgorithm,
    NamedGroup,
    SignatureAlgorithm,
    SignatureScheme,
    alert_description_name,
    alert_level_name,
    cipher_name,
    content_type_name,
    extension_name,
    group_name,
    handshake_name,
    is_grease,
    name_of,
    sigalg_name,
    version_name,
    zeek_version_name,
)

SHARED = Path(__file__).parents[2] / "shared"
CORPUS = SHARED / "corpus"

EIGHT_BIT_ENUMS: list[type[IntEnum]] = [
    ContentType,
    HandshakeType,
    AlertLevel,
    AlertDescription,
    ECPointFormat,
    ECCurveType,
    ClientCertificateType,
    HashAlgorithm,
    SignatureAlgorithm,
]
SIXTEEN_BIT_ENUMS: list[type[IntEnum]] = [ExtensionType, NamedGroup, SignatureScheme, CipherSuite]

ALL_LOOKUPS = [
    cipher_name,
    extension_name,
    group_name,
    sigalg_name,
    alert_description_name,
    alert_level_name,
    handshake_name,
    content_type_name,
    version_name,
    zeek_version_name,
]

GREASE_16 = [0x0A0A, 0x1A1A, 0x2A2A, 0x3A3A, 0x4A4A, 0x5A5A, 0x6A6A, 0x7A7A,
             0x8A8A, 0x9A9A, 0xAAAA, 0xBABA, 0xCACA, 0xDADA, 0xEAEA, 0xFAFA]


def _expected_rows() -> list[dict[str, object]]:
    path = CORPUS / "expected.jsonl"
    if not path.is_file():
        pytest.skip(f"conformance corpus not found at {path} (shared/ is not beside the repo)")
    with path.open(encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def _aux_rows(kind: str) -> list[dict[str, object]]:
    path = CORPUS / "expected-aux.jsonl"
    if not path.is_file():
        pytest.skip(f"conformance corpus not found at {path} (shared/ is not beside the repo)")
    with path.open(encoding="utf-8") as fh:
        rows = [json.loads(line) for line in fh if line.strip()]
    return [r for r in rows if r.get("kind") == kind]


# --- spot checks against well-known values ---------------------------------


@pytest.mark.parametrize(
    ("func", "value", "expected"),
    [
        (cipher_name, 0x0000, "TLS_NULL_WITH_NULL_NULL"),
        (cipher_name, 0x0004, "TLS_RSA_WITH_RC4_128_MD5"),
        (cipher_name, 0x002F, "TLS_RSA_WITH_AES_128_CBC_SHA"),
        (cipher_name, 0x0034, "TLS_DH_anon_WITH_AES_128_CBC_SHA"),
        (cipher_name, 0x00FF, "TLS_EMPTY_RENEGOTIATION_INFO_SCSV"),
        (cipher_name, 0x1301, "TLS_AES_128_GCM_SHA256"),
        (cipher_name, 0x1303, "TLS_CHACHA20_POLY1305_SHA256"),
        (cipher_name, 0x5600, "TLS_FALLBACK_SCSV"),
        (cipher_name, 0xC02F, "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"),
        (cipher_name, 0xC0AA, "TLS_PSK_DHE_WITH_AES_128_CCM_8"),
        (cipher_name, 0xC0B0, "TLS_ECCPWD_WITH_AES_128_GCM_SHA256"),
        (cipher_name, 0xC0B4, "TLS_SHA256_SHA256"),
        (cipher_name, 0xCCA9, "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256"),
        (cipher_name, 0xD005, "TLS_ECDHE_PSK_WITH_AES_128_CCM_SHA256"),
        (cipher_name, 0xCC13, "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256_OLD"),
        (cipher_name, 0xCC14, "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256_OLD"),
        (cipher_name, 0xCC15, "TLS_DHE_RSA_WITH_CHACHA20_POLY1305_SHA256_OLD"),
        (cipher_name, 0x0081, "TLS_GOSTR341001_WITH_28147_CNT_IMIT"),
        (cipher_name, 0x010080, "SSL_CK_RC4_128_WITH_MD5"),
        (cipher_name, 0x0700C0, "SSL_CK_DES_192_EDE3_CBC_WITH_MD5"),
        (extension_name, 0, "server_name"),
        (extension_name, 16, "application_layer_protocol_negotiation"),
        (extension_name, 35, "session_ticket"),
        (extension_name, 43, "supported_versions"),
        (extension_name, 51, "key_share"),
        (extension_name, 0xFE0D, "encrypted_client_hello"),
        (extension_name, 0xFF01, "renegotiation_info"),
        (extension_name, 13172, "next_protocol_negotiation"),
        (group_name, 23, "secp256r1"),
        (group_name, 29, "x25519"),
        (group_name, 256, "ffdhe2048"),
        (group_name, 0x11EC, "X25519MLKEM768"),
        (group_name, 0x11EB, "SecP256r1MLKEM768"),
        (group_name, 0x6399, "X25519Kyber768Draft00"),
        (sigalg_name, 0x0401, "rsa_pkcs1_sha256"),
        (sigalg_name, 0x0403, "ecdsa_secp256r1_sha256"),
        (sigalg_name, 0x0804, "rsa_pss_rsae_sha256"),
        (sigalg_name, 0x0807, "ed25519"),
        (sigalg_name, 0x0904, "mldsa44"),
        (sigalg_name, 0x0303, "ecdsa_sha224"),
        (alert_description_name, 0, "close_notify"),
        (alert_description_name, 10, "unexpected_message"),
        (alert_description_name, 40, "handshake_failure"),
        (alert_description_name, 45, "certificate_expired"),
        (alert_description_name, 46, "certificate_unknown"),
        (alert_description_name, 48, "unknown_ca"),
        (alert_description_name, 70, "protocol_version"),
        (alert_description_name, 112, "unrecognized_name"),
        (alert_description_name, 120, "no_application_protocol"),
        (alert_description_name, 121, "ech_required"),
        (alert_level_name, 1, "warning"),
        (alert_level_name, 2, "fatal"),
        (handshake_name, 0, "hello_request"),
        (handshake_name, 1, "client_hello"),
        (handshake_name, 6, "hello_retry_request"),
        (handshake_name, 8, "encrypted_extensions"),
        (handshake_name, 20, "finished"),
        (handshake_name, 25, "compressed_certificate"),
        (handshake_name, 254, "message_hash"),
        (content_type_name, 22, "handshake"),
        (content_type_name, 25, "tls12_cid"),
        (content_type_name, 26, "ack"),
    ],
)
def test_well_known_names(func, value, expected):  # type: ignore[no-untyped-def]
    assert func(value) == expected


def test_enum_members_spelled_as_iana() -> None:
    assert HandshakeType.client_hello == 1
    assert AlertDescription.handshake_failure == 40
    assert CipherSuite.TLS_AES_128_GCM_SHA256 == 0x1301
    assert ExtensionType.application_layer_protocol_negotiation == 16
    assert NamedGroup.X25519MLKEM768 == 0x11EC
    assert SignatureScheme.rsa_pss_rsae_sha256 == 0x0804
    assert names.CertificateType is ClientCertificateType
    assert ClientCertificateType.ecdsa_sign == 64
    assert ECPointFormat.ansiX962_compressed_prime == 1
    assert ECCurveType.named_curve == 3


def test_cipher_registry_is_complete_enough() -> None:
    # The IANA registry had 352 assigned suites in the snapshot we transcribed.
    assert len(CipherSuite) == 352
    assert CipherSuite(0x0000).name == "TLS_NULL_WITH_NULL_NULL"
    assert max(CipherSuite) == CipherSuite.TLS_ECDHE_PSK_WITH_AES_128_CCM_SHA256


# --- unknown values ---------------------------------------------------------


def test_unknown_values_use_registry_width() -> None:
    assert cipher_name(0x1337) == "unknown-0x1337"
    assert cipher_name(0x0047) == "unknown-0x0047"
    assert extension_name(0x00FE) == "unknown-0x00fe"
    assert group_name(0x0100 - 1) == "unknown-0x00ff"
    assert sigalg_name(0x0202 + 0x100 * 0x10) == "unknown-0x1202"
    assert alert_description_name(200) == "unknown-0xc8"
    assert alert_description_name(7) == "unknown-0x07"
    assert alert_level_name(3) == "unknown-0x03"
    assert handshake_name(7) == "unknown-0x07"
    assert content_type_name(0) == "unknown-0x00"
    assert cipher_name(0x090080) == "unknown-0x090080"


def test_name_of_enum_and_table_agree() -> None:
    assert name_of(AlertDescription, 48) == "unknown_ca"
    assert name_of(ALERT_NAMES, 48) == "unknown_ca"
    assert name_of(AlertDescription, 201) == "unknown-0xc9"
    assert name_of(ALERT_NAMES, 201) == "unknown-0xc9"
    assert name_of(HandshakeType, 99) == "unknown-0x63"
    assert name_of(ExtensionType, 0x1234) == "unknown-0x1234"
    assert name_of(EXTENSION_NAMES, 0x1234) == "unknown-0x1234"
    assert name_of(CipherSuite, 0xCC13) == "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256_OLD"
    assert name_of(NamedGroup, 0x2A2A) == "grease-0x2a2a"
    # an unregistered dict counts as a 16-bit registry
    assert name_of({1: "one"}, 1) == "one"
    assert name_of({1: "one"}, 2) == "unknown-0x0002"


@pytest.mark.parametrize(
    "bad", [None, "23", b"\x00\x17", 1.5, [1], {"a": 1}, -1, 2**70, object()]
)
def test_lookups_never_raise_on_garbage(bad: object) -> None:
    for func in ALL_LOOKUPS:
        out = func(bad)
        assert isinstance(out, str) and out.startswith("unknown-"), (func, bad, out)
    for table in (CipherSuite, ALERT_NAMES, HandshakeType, {}, "not a table", 5):
        out = name_of(table, bad)  # type: ignore[arg-type]
        assert isinstance(out, str) and out.startswith("unknown-"), (table, bad, out)


@given(st.integers(min_value=-(2**40), max_value=2**40))
def test_lookups_total_on_ints(value: int) -> None:
    for func in ALL_LOOKUPS:
        out = func(value)
        assert isinstance(out, str) and out
    assert history_letter(value, True) in set(HISTORY_LETTERS.values()) | {"Z"}
    assert record_history_letter(value, False) in {"", "i", "l", "d", "b", "q"}


def test_every_member_round_trips_through_name_of() -> None:
    for enum_cls in EIGHT_BIT_ENUMS + SIXTEEN_BIT_ENUMS:
        for member in enum_cls:
            assert name_of(enum_cls, member.value) == member.name


def test_code_points_fit_their_registry_width() -> None:
    for enum_cls in EIGHT_BIT_ENUMS:
        assert all(0 <= m.value <= 0xFF for m in enum_cls), enum_cls
    for enum_cls in SIXTEEN_BIT_ENUMS:
        assert all(0 <= m.value <= 0xFFFF for m in enum_cls), enum_cls
    assert all(0xFFFF < v <= 0xFFFFFF for v in SSLV2_CIPHER_KINDS)


def test_non_iana_tables_never_shadow_iana() -> None:
    pairs = [
        (CipherSuite, NON_IANA_CIPHER_NAMES, CIPHER_NAMES),
        (ExtensionType, NON_IANA_EXTENSION_NAMES, EXTENSION_NAMES),
        (NamedGroup, NON_IANA_GROUP_NAMES, GROUP_NAMES),
        (SignatureScheme, NON_IANA_SIGALG_NAMES, SIGALG_NAMES),
        (HandshakeType, NON_IANA_HANDSHAKE_NAMES, HANDSHAKE_NAMES),
    ]
    for enum_cls, extra, table in pairs:
        iana_values = {m.value for m in enum_cls}
        assert not iana_values & set(extra), enum_cls
        assert not GREASE_VALUES & set(extra), enum_cls
        assert len(table) == len(enum_cls) + len(extra) + (
            len(SSLV2_CIPHER_KINDS) if enum_cls is CipherSuite else 0
        )


def test_iana_names_unique_within_each_registry() -> None:
    for enum_cls in EIGHT_BIT_ENUMS + SIXTEEN_BIT_ENUMS:
        assert len({m.name for m in enum_cls}) == len(enum_cls)
    # IANA 16-bit registries never register GREASE values
    for enum_cls in SIXTEEN_BIT_ENUMS:
        assert not {m.value for m in enum_cls} & GREASE_VALUES


# --- GREASE (RFC 8701) ------------------------------------------------------


@pytest.mark.parametrize("value", GREASE_16)
def test_grease_values_detected_and_named(value: int) -> None:
    assert is_grease(value)
    label = "grease-0x%04x" % value
    assert cipher_name(value) == label
    assert extension_name(value) == label
    assert group_name(value) == label
    assert sigalg_name(value) == label
    assert version_name(value) == label


@pytest.mark.parametrize("value", GREASE_16)
def test_grease_neighbours_are_not_grease(value: int) -> None:
    hi, lo = value >> 8, value & 0xFF
    neighbours = {
        value - 1,
        value + 1,
        (hi << 8) | (lo ^ 0x10),  # bytes differ
        ((hi ^ 0x10) << 8) | lo,
        (hi << 8) | (lo ^ 0x01),  # low nibble not 0xA
        ((hi ^ 0x01) << 8) | (lo ^ 0x01),  # both bytes equal, nibble not 0xA
        hi,  # 8-bit value
        value << 8,
        value | 0x10000,  # wider than 16 bits
    }
    for n in neighbours:
        assert not is_grease(n), hex(n)


def test_exactly_sixteen_grease_values() -> None:
    assert sorted(v for v in range(0x10000) if is_grease(v)) == GREASE_16
    assert not is_grease(None)
    assert not is_grease("0x0a0a")


# --- versions -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (0x0002, "SSLv2"),
        (0x0200, "SSLv2"),
        (0x0300, "SSLv3"),
        (0x0301, "TLSv1.0"),
        (0x0302, "TLSv1.1"),
        (0x0303, "TLSv1.2"),
        (0x0304, "TLSv1.3"),
        (0x7F0E, "TLSv1.3-draft14"),
        (0x7F17, "TLSv1.3-draft23"),
        (0x7F1C, "TLSv1.3-draft28"),
        (0xFB17, "TLSv1.3-draft23-fb"),
        (0xFB1A, "TLSv1.3-draft26-fb"),
        (0xFEFF, "DTLSv1.0"),
        (0xFEFD, "DTLSv1.2"),
        (0xFEFC, "DTLSv1.3"),
        (0x7E01, "unknown-0x7e01"),
        (0x0305, "unknown-0x0305"),
        (0x0000, "unknown-0x0000"),
    ],
)
def test_version_name(value: int, expected: str) -> None:
    assert version_name(value) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (0x0002, "SSLv2"),
        (0x0300, "SSLv3"),
        (0x0301, "TLSv10"),
        (0x0303, "TLSv12"),
        (0x0304, "TLSv13"),
        (0x7F0E, "TLSv13-draft14"),
        (0x7F10, "TLSv13-draft16"),
        (0x7F17, "TLSv13-draft23"),
        (0xFEFF, "DTLSv10"),
        (0xFEFD, "DTLSv12"),
        (0xFEFC, "DTLSv13"),
        (0x7E01, "unknown-32257"),
        (0x0200, "unknown-512"),
    ],
)
def test_zeek_version_name(value: int, expected: str) -> None:
    assert zeek_version_name(value) == expected


# --- ssl_history alphabet ----------------------------------------------------


def test_history_letters() -> None:
    assert history_letter(HandshakeType.client_hello, True) == "C"
    assert history_letter(HandshakeType.server_hello, False) == "s"
    assert history_letter(HandshakeType.certificate, False) == "x"
    assert history_letter(HandshakeType.finished, True) == "F"
    assert history_letter(HandshakeType.hello_retry_request, False) == "j"
    assert history_letter(HandshakeType.compressed_certificate, False) == "z"
    assert history_letter(HandshakeType.request_connection_id, True) == "Z"
    assert history_letter(200, True) == "Z"
    assert record_history_letter(ContentType.change_cipher_spec, True) == "I"
    assert record_history_letter(ContentType.alert, False) == "l"
    assert record_history_letter(ContentType.application_data, False) == "d"
    assert record_history_letter(ContentType.heartbeat, True) == "B"
    assert record_history_letter(ContentType.handshake, True) == ""
    assert record_history_letter(99, False) == "q"
    # Zeek's letters are all distinct
    letters = list(HISTORY_LETTERS.values()) + list(RECORD_HISTORY_LETTERS.values()) + ["Z", "Q"]
    assert len(letters) == len(set(letters))
    assert all(letter.isupper() for letter in letters)
    assert MAX_HISTORY == 100


def test_one_definition_of_tls13() -> None:
    """The sensor's inlined check, proto's code check and the analyzer's name check agree on
    every 16-bit version (0x7e01 and 0x7e02 included, which render as ``unknown-0x7e0N``)."""
    from cext import _tls_py
    for v in range(0x10000):
        tls13 = names.is_tls13(v)
        assert _tls_py._is_tls13(v) == tls13, hex(v)
        assert names.is_tls13_name(version_name(v)) == tls13, hex(v)
    assert names.is_tls13(0x7E01) and not names.is_tls13(0x0303)


# --- conformance corpus -------------------------------------------------------


def test_corpus_ciphers_and_curves_come_out_of_the_lookups() -> None:
    rows = _expected_rows()
    by_cipher_name = {cipher_name(v): v for v in CIPHER_NAMES}
    by_group_name = {group_name(v): v for v in GROUP_NAMES}
    ciphers = {r["cipher"] for r in rows if r.get("cipher") is not None}
    curves = {r["curve"] for r in rows if r.get("curve") is not None}
    assert ciphers and curves, "corpus has no cipher/curve values to check"
    for name in sorted(ciphers):  # type: ignore[type-var]
        assert name in by_cipher_name, name
        assert cipher_name(by_cipher_name[name]) == name
        # every cipher Zeek logged for these captures is an IANA registration
        assert CipherSuite(by_cipher_name[name]).name == name
    for name in sorted(curves):  # type: ignore[type-var]
        assert name in by_group_name, name
        assert group_name(by_group_name[name]) == name


def test_corpus_versions_are_zeek_spellings() -> None:
    rows = _expected_rows()
    versions = {r["version"] for r in rows if r.get("version") is not None}
    producible = {zeek_version_name(v) for v in range(0x10000)}
    for v in sorted(versions):  # type: ignore[type-var]
        assert v in producible, v


def test_corpus_ssl_history_uses_our_alphabet() -> None:
    rows = _expected_rows()
    alphabet = set(HISTORY_LETTERS.values()) | set(RECORD_HISTORY_LETTERS.values()) | {"Z", "Q"}
    alphabet |= {c.lower() for c in alphabet}
    alphabet.add("^")
    seen = "".join(str(r["ssl_history"]) for r in rows if r.get("ssl_history"))
    assert seen
    assert set(seen) <= alphabet, set(seen) - alphabet


def test_corpus_certificate_request_fields_are_named() -> None:
    rows = _aux_rows("certificate_request")
    assert rows
    for row in rows:
        for hash_alg, sig_alg in row["supported_signature_algorithms_hash_sig"]:  # type: ignore[union-attr]
            name = sigalg_name((hash_alg << 8) | sig_alg)
            assert not name.startswith("unknown-"), (hash_alg, sig_alg)
        for cert_type in row["certificate_types"]:  # type: ignore[union-attr]
            assert not name_of(ClientCertificateType, cert_type).startswith("unknown-"), cert_type


# --- module hygiene -------------------------------------------------------------


def test_plain_data_module_imports_only_enum() -> None:
    tree = ast.parse(Path(names.__file__).read_text(encoding="utf-8"))
    imported: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            imported.add(node.module or "")
    assert imported <= {"__future__", "enum"}, imported


def test_all_is_accurate() -> None:
    for public in names.__all__:
        assert hasattr(names, public), public
