"""TLS name tables shared by the sensor and the analyzer.

One ``IntEnum`` per IANA "TLS parameters" registry, members spelled exactly as the
registry's Description column (the tlslite-ng convention), each commented with the
RFC that defines it.  The enums hold IANA registrations only.  Code points that are
*not* in a registry but show up in real captures (pre-RFC drafts, vendor
experiments, SSLv2) live in clearly separated ``NON_IANA_*`` / ``SSLV2_*`` dicts.

Registry snapshot: the IANA tls-parameters, tls-extensiontype-values and
tls-signaturescheme registries as of 2024/2025 (ML-KEM hybrids, ML-DSA, AEGIS,
ECH), cross-checked against Zeek ``scripts/base/protocols/ssl/consts.zeek`` and
Wireshark 4.0's dissector tables.

Lookups never raise.  The ``*_NAMES`` dicts are built once at import; each holds
everything its lookup function can name (IANA first, then the non-IANA extras).
Unknown values come back as ``unknown-0x%02x`` (8-bit registries) or
``unknown-0x%04x`` (16-bit registries); GREASE values (RFC 8701) as
``grease-0x0a0a``.

This is a plain data module: stdlib ``enum`` only, no I/O, no mutable state
beyond the constant tables.
"""

from __future__ import annotations

from enum import IntEnum, unique

__all__ = [
    # enums (IANA registries)
    "ContentType",
    "HandshakeType",
    "AlertLevel",
    "AlertDescription",
    "ExtensionType",
    "NamedGroup",
    "SignatureScheme",
    "CipherSuite",
    "ECPointFormat",
    "ECCurveType",
    "ClientCertificateType",
    "CertificateType",
    "HashAlgorithm",
    "SignatureAlgorithm",
    # non-IANA extras
    "NON_IANA_CIPHER_NAMES",
    "SSLV2_CIPHER_KINDS",
    "NON_IANA_EXTENSION_NAMES",
    "NON_IANA_GROUP_NAMES",
    "NON_IANA_SIGALG_NAMES",
    "NON_IANA_HANDSHAKE_NAMES",
    # lookup dicts
    "CONTENT_TYPE_NAMES",
    "HANDSHAKE_NAMES",
    "ALERT_LEVEL_NAMES",
    "ALERT_NAMES",
    "EXTENSION_NAMES",
    "GROUP_NAMES",
    "SIGALG_NAMES",
    "CIPHER_NAMES",
    "EC_POINT_FORMAT_NAMES",
    "EC_CURVE_TYPE_NAMES",
    "CLIENT_CERTIFICATE_TYPE_NAMES",
    "HASH_ALGORITHM_NAMES",
    "SIGNATURE_ALGORITHM_NAMES",
    "GREASE_VALUES",
    # functions
    "name_of",
    "is_grease",
    "grease_name",
    "cipher_name",
    "extension_name",
    "group_name",
    "sigalg_name",
    "alert_description_name",
    "alert_level_name",
    "handshake_name",
    "content_type_name",
    "ec_point_format_name",
    "version_name",
    "zeek_version_name",
    "is_tls13",
    "is_tls13_name",
    "TLS13_EXPERIMENTS",
]


# ---------------------------------------------------------------------------
# Small registries (8-bit code points)
# ---------------------------------------------------------------------------


@unique
class ContentType(IntEnum):
    """TLS ContentType registry (RFC 8446 §B.1; record layer, 8 bits)."""

    change_cipher_spec = 20  # RFC 8446
    alert = 21  # RFC 8446
    handshake = 22  # RFC 8446
    application_data = 23  # RFC 8446
    heartbeat = 24  # RFC 6520
    tls12_cid = 25  # RFC 9146 (DTLS 1.2 connection ID)
    ack = 26  # RFC 9147 (DTLS 1.3)


@unique
class HandshakeType(IntEnum):
    """TLS HandshakeType registry (RFC 8446 §B.3, RFC 8447; 8 bits)."""

    hello_request = 0  # RFC 5246
    client_hello = 1  # RFC 8446
    server_hello = 2  # RFC 8446
    hello_verify_request = 3  # RFC 6347 (DTLS)
    new_session_ticket = 4  # RFC 5077, RFC 8446
    end_of_early_data = 5  # RFC 8446
    hello_retry_request = 6  # TLS 1.3 drafts <= 21; RFC 8446 reserves it
    encrypted_extensions = 8  # RFC 8446
    request_connection_id = 9  # RFC 9147
    new_connection_id = 10  # RFC 9147
    certificate = 11  # RFC 8446
    server_key_exchange = 12  # RFC 5246
    certificate_request = 13  # RFC 8446
    server_hello_done = 14  # RFC 5246
    certificate_verify = 15  # RFC 8446
    client_key_exchange = 16  # RFC 5246
    client_certificate_request = 17  # RFC 9261 (exported authenticators)
    finished = 20  # RFC 8446
    certificate_url = 21  # RFC 6066
    certificate_status = 22  # RFC 6066
    supplemental_data = 23  # RFC 4680
    key_update = 24  # RFC 8446
    compressed_certificate = 25  # RFC 8879
    ekt_key = 26  # RFC 8870
    message_hash = 254  # RFC 8446


@unique
class AlertLevel(IntEnum):
    """TLS alert levels (RFC 5246 §7.2; 8 bits)."""

    warning = 1  # RFC 5246
    fatal = 2  # RFC 5246


@unique
class AlertDescription(IntEnum):
    """TLS Alerts registry (RFC 8446 §6, RFC 8447; 8 bits)."""

    close_notify = 0  # RFC 8446
    unexpected_message = 10  # RFC 8446
    bad_record_mac = 20  # RFC 8446
    decryption_failed = 21  # RFC 5246 (reserved in TLS 1.3)
    record_overflow = 22  # RFC 8446
    decompression_failure = 30  # RFC 5246 (reserved in TLS 1.3)
    handshake_failure = 40  # RFC 8446
    no_certificate = 41  # SSLv3 (reserved)
    bad_certificate = 42  # RFC 8446
    unsupported_certificate = 43  # RFC 8446
    certificate_revoked = 44  # RFC 8446
    certificate_expired = 45  # RFC 8446
    certificate_unknown = 46  # RFC 8446
    illegal_parameter = 47  # RFC 8446
    unknown_ca = 48  # RFC 8446
    access_denied = 49  # RFC 8446
    decode_error = 50  # RFC 8446
    decrypt_error = 51  # RFC 8446
    too_many_cids_requested = 52  # RFC 9147
    export_restriction = 60  # RFC 4346 (reserved)
    protocol_version = 70  # RFC 8446
    insufficient_security = 71  # RFC 8446
    internal_error = 80  # RFC 8446
    inappropriate_fallback = 86  # RFC 7507
    user_canceled = 90  # RFC 8446
    no_renegotiation = 100  # RFC 5246 (reserved in TLS 1.3)
    missing_extension = 109  # RFC 8446
    unsupported_extension = 110  # RFC 8446
    certificate_unobtainable = 111  # RFC 6066 (reserved in TLS 1.3)
    unrecognized_name = 112  # RFC 6066
    bad_certificate_status_response = 113  # RFC 6066
    bad_certificate_hash_value = 114  # RFC 6066 (reserved in TLS 1.3)
    unknown_psk_identity = 115  # RFC 4279, RFC 8446
    certificate_required = 116  # RFC 8446
    general_error = 117  # draft-ietf-tls-rfc8446bis
    no_application_protocol = 120  # RFC 7301
    ech_required = 121  # draft-ietf-tls-esni (ECH)


@unique
class ECPointFormat(IntEnum):
    """TLS EC Point Formats registry (RFC 8422 §5.1.2; 8 bits)."""

    uncompressed = 0  # RFC 8422
    ansiX962_compressed_prime = 1  # RFC 4492 (deprecated by RFC 8422)
    ansiX962_compressed_char2 = 2  # RFC 4492 (deprecated by RFC 8422)


@unique
class ECCurveType(IntEnum):
    """TLS EC Curve Types registry (RFC 8422 §5.4; 8 bits)."""

    explicit_prime = 1  # RFC 4492 (deprecated by RFC 8422)
    explicit_char2 = 2  # RFC 4492 (deprecated by RFC 8422)
    named_curve = 3  # RFC 8422


@unique
class ClientCertificateType(IntEnum):
    """TLS ClientCertificateType Identifiers registry (RFC 5246 §7.4.4; 8 bits)."""

    rsa_sign = 1  # RFC 5246
    dss_sign = 2  # RFC 5246
    rsa_fixed_dh = 3  # RFC 5246
    dss_fixed_dh = 4  # RFC 5246
    rsa_ephemeral_dh_RESERVED = 5  # RFC 5246
    dss_ephemeral_dh_RESERVED = 6  # RFC 5246
    fortezza_dms_RESERVED = 20  # RFC 5246
    ecdsa_sign = 64  # RFC 8422
    rsa_fixed_ecdh = 65  # RFC 8422 (deprecated)
    ecdsa_fixed_ecdh = 66  # RFC 8422 (deprecated)
    gost_sign256 = 67  # RFC 9189
    gost_sign512 = 68  # RFC 9189


#: The brief for this module calls the CertificateRequest ``certificate_types``
#: registry ``CertificateType``; IANA's name is ClientCertificateType.
CertificateType = ClientCertificateType


@unique
class HashAlgorithm(IntEnum):
    """TLS HashAlgorithm registry (RFC 5246 §7.4.1.4.1, RFC 8447; TLS <= 1.2)."""

    none = 0  # RFC 5246
    md5 = 1  # RFC 5246
    sha1 = 2  # RFC 5246
    sha224 = 3  # RFC 5246
    sha256 = 4  # RFC 5246
    sha384 = 5  # RFC 5246
    sha512 = 6  # RFC 5246
    Intrinsic = 8  # RFC 8422


@unique
class SignatureAlgorithm(IntEnum):
    """TLS SignatureAlgorithm registry (RFC 5246 §7.4.1.4.1, RFC 8447; TLS <= 1.2)."""

    anonymous = 0  # RFC 5246
    rsa = 1  # RFC 5246
    dsa = 2  # RFC 5246
    ecdsa = 3  # RFC 5246
    ed25519 = 7  # RFC 8422
    ed448 = 8  # RFC 8422
    gostr34102012_256 = 64  # RFC 9189
    gostr34102012_512 = 65  # RFC 9189


# ---------------------------------------------------------------------------
# Extensions, groups, signature schemes (16-bit code points)
# ---------------------------------------------------------------------------


@unique
class ExtensionType(IntEnum):
    """TLS ExtensionType Values registry (RFC 8446 §4.2, RFC 8447; 16 bits)."""

    server_name = 0  # RFC 6066
    max_fragment_length = 1  # RFC 6066
    client_certificate_url = 2  # RFC 6066
    trusted_ca_keys = 3  # RFC 6066
    truncated_hmac = 4  # RFC 6066 (not recommended)
    status_request = 5  # RFC 6066
    user_mapping = 6  # RFC 4681
    client_authz = 7  # RFC 5878
    server_authz = 8  # RFC 5878
    cert_type = 9  # RFC 6091
    supported_groups = 10  # RFC 8422, RFC 7919 (formerly elliptic_curves)
    ec_point_formats = 11  # RFC 8422
    srp = 12  # RFC 5054
    signature_algorithms = 13  # RFC 8446
    use_srtp = 14  # RFC 5764
    heartbeat = 15  # RFC 6520
    application_layer_protocol_negotiation = 16  # RFC 7301
    status_request_v2 = 17  # RFC 6961
    signed_certificate_timestamp = 18  # RFC 6962
    client_certificate_type = 19  # RFC 7250
    server_certificate_type = 20  # RFC 7250
    padding = 21  # RFC 7685
    encrypt_then_mac = 22  # RFC 7366
    extended_master_secret = 23  # RFC 7627
    token_binding = 24  # RFC 8472
    cached_info = 25  # RFC 7924
    tls_lts = 26  # draft-gutmann-tls-lts
    compress_certificate = 27  # RFC 8879
    record_size_limit = 28  # RFC 8449
    pwd_protect = 29  # RFC 8492
    pwd_clear = 30  # RFC 8492
    password_salt = 31  # RFC 8492
    ticket_pinning = 32  # RFC 8672
    tls_cert_with_extern_psk = 33  # RFC 8773
    delegated_credential = 34  # RFC 9345
    session_ticket = 35  # RFC 5077, RFC 8447 (formerly "SessionTicket TLS")
    TLMSP = 36  # ETSI TS 103 523-2
    TLMSP_proxying = 37  # ETSI TS 103 523-2
    TLMSP_delegate = 38  # ETSI TS 103 523-2
    supported_ekt_ciphers = 39  # RFC 8870
    pre_shared_key = 41  # RFC 8446
    early_data = 42  # RFC 8446
    supported_versions = 43  # RFC 8446
    cookie = 44  # RFC 8446
    psk_key_exchange_modes = 45  # RFC 8446
    certificate_authorities = 47  # RFC 8446
    oid_filters = 48  # RFC 8446
    post_handshake_auth = 49  # RFC 8446
    signature_algorithms_cert = 50  # RFC 8446
    key_share = 51  # RFC 8446
    transparency_info = 52  # RFC 9162
    # IANA Description: "connection_id (deprecated)" -- not a Python identifier.
    connection_id_deprecated = 53  # RFC 9146 (draft code point)
    connection_id = 54  # RFC 9146
    external_id_hash = 55  # RFC 8844
    external_session_id = 56  # RFC 8844
    quic_transport_parameters = 57  # RFC 9001
    ticket_request = 58  # RFC 9149
    dnssec_chain = 59  # RFC 9102
    sequence_number_encryption_algorithms = 60  # draft-pismenny-tls-dtls-plaintext-sequence-number
    rrc = 61  # draft-ietf-tls-dtls-rrc
    tls_flags = 62  # draft-ietf-tls-tlsflags
    ech_outer_extensions = 0xFD00  # draft-ietf-tls-esni (ECH)
    encrypted_client_hello = 0xFE0D  # draft-ietf-tls-esni (ECH)
    renegotiation_info = 0xFF01  # RFC 5746


@unique
class NamedGroup(IntEnum):
    """TLS Supported Groups registry (RFC 8446 §4.2.7, RFC 8422, RFC 7919; 16 bits)."""

    sect163k1 = 1  # RFC 8422 (deprecated)
    sect163r1 = 2  # RFC 8422 (deprecated)
    sect163r2 = 3  # RFC 8422 (deprecated)
    sect193r1 = 4  # RFC 8422 (deprecated)
    sect193r2 = 5  # RFC 8422 (deprecated)
    sect233k1 = 6  # RFC 8422 (deprecated)
    sect233r1 = 7  # RFC 8422 (deprecated)
    sect239k1 = 8  # RFC 8422 (deprecated)
    sect283k1 = 9  # RFC 8422
    sect283r1 = 10  # RFC 8422
    sect409k1 = 11  # RFC 8422
    sect409r1 = 12  # RFC 8422
    sect571k1 = 13  # RFC 8422
    sect571r1 = 14  # RFC 8422
    secp160k1 = 15  # RFC 8422 (deprecated)
    secp160r1 = 16  # RFC 8422 (deprecated)
    secp160r2 = 17  # RFC 8422 (deprecated)
    secp192k1 = 18  # RFC 8422 (deprecated)
    secp192r1 = 19  # RFC 8422 (deprecated)
    secp224k1 = 20  # RFC 8422 (deprecated)
    secp224r1 = 21  # RFC 8422 (deprecated)
    secp256k1 = 22  # RFC 8422
    secp256r1 = 23  # RFC 8422, RFC 8446
    secp384r1 = 24  # RFC 8422, RFC 8446
    secp521r1 = 25  # RFC 8422, RFC 8446
    brainpoolP256r1 = 26  # RFC 7027
    brainpoolP384r1 = 27  # RFC 7027
    brainpoolP512r1 = 28  # RFC 7027
    x25519 = 29  # RFC 8422, RFC 8446
    x448 = 30  # RFC 8422, RFC 8446
    brainpoolP256r1tls13 = 31  # RFC 8734
    brainpoolP384r1tls13 = 32  # RFC 8734
    brainpoolP512r1tls13 = 33  # RFC 8734
    GC256A = 34  # RFC 9189
    GC256B = 35  # RFC 9189
    GC256C = 36  # RFC 9189
    GC256D = 37  # RFC 9189
    GC512A = 38  # RFC 9189
    GC512B = 39  # RFC 9189
    GC512C = 40  # RFC 9189
    curveSM2 = 41  # RFC 8998
    ffdhe2048 = 256  # RFC 7919
    ffdhe3072 = 257  # RFC 7919
    ffdhe4096 = 258  # RFC 7919
    ffdhe6144 = 259  # RFC 7919
    ffdhe8192 = 260  # RFC 7919
    MLKEM512 = 512  # draft-connolly-tls-mlkem-key-agreement
    MLKEM768 = 513  # draft-connolly-tls-mlkem-key-agreement
    MLKEM1024 = 514  # draft-connolly-tls-mlkem-key-agreement
    SecP256r1MLKEM768 = 0x11EB  # draft-ietf-tls-ecdhe-mlkem
    X25519MLKEM768 = 0x11EC  # draft-ietf-tls-ecdhe-mlkem
    SecP384r1MLKEM1024 = 0x11ED  # draft-ietf-tls-ecdhe-mlkem
    # IANA Description: "X25519Kyber768Draft00 (OBSOLETE)"; Zeek logs the bare name.
    X25519Kyber768Draft00 = 0x6399  # draft-tls-westerbaan-xyber768d00 (pre-standard Kyber)
    # IANA Description: "SecP256r1Kyber768Draft00 (OBSOLETE)".
    SecP256r1Kyber768Draft00 = 0x639A  # draft-kwiatkowski-tls-ecdhe-kyber
    arbitrary_explicit_prime_curves = 0xFF01  # RFC 8422 (deprecated)
    arbitrary_explicit_char2_curves = 0xFF02  # RFC 8422 (deprecated)


@unique
class SignatureScheme(IntEnum):
    """TLS SignatureScheme registry (RFC 8446 §4.2.3, RFC 8447; 16 bits)."""

    rsa_pkcs1_sha1 = 0x0201  # RFC 8446, RFC 9155 (not recommended)
    ecdsa_sha1 = 0x0203  # RFC 8446, RFC 9155 (not recommended)
    rsa_pkcs1_sha256 = 0x0401  # RFC 8446
    ecdsa_secp256r1_sha256 = 0x0403  # RFC 8446
    rsa_pkcs1_sha256_legacy = 0x0420  # draft-davidben-tls13-pkcs1
    rsa_pkcs1_sha384 = 0x0501  # RFC 8446
    ecdsa_secp384r1_sha384 = 0x0503  # RFC 8446
    rsa_pkcs1_sha384_legacy = 0x0520  # draft-davidben-tls13-pkcs1
    rsa_pkcs1_sha512 = 0x0601  # RFC 8446
    ecdsa_secp521r1_sha512 = 0x0603  # RFC 8446
    rsa_pkcs1_sha512_legacy = 0x0620  # draft-davidben-tls13-pkcs1
    eccsi_sha256 = 0x0704  # draft-wang-tls-raw-public-key-with-ibc
    iso_ibs1 = 0x0705  # draft-wang-tls-raw-public-key-with-ibc
    iso_ibs2 = 0x0706  # draft-wang-tls-raw-public-key-with-ibc
    iso_chinese_ibs = 0x0707  # draft-wang-tls-raw-public-key-with-ibc
    sm2sig_sm3 = 0x0708  # RFC 8998
    gostr34102012_256a = 0x0709  # RFC 9367
    gostr34102012_256b = 0x070A  # RFC 9367
    gostr34102012_256c = 0x070B  # RFC 9367
    gostr34102012_256d = 0x070C  # RFC 9367
    gostr34102012_512a = 0x070D  # RFC 9367
    gostr34102012_512b = 0x070E  # RFC 9367
    gostr34102012_512c = 0x070F  # RFC 9367
    rsa_pss_rsae_sha256 = 0x0804  # RFC 8446
    rsa_pss_rsae_sha384 = 0x0805  # RFC 8446
    rsa_pss_rsae_sha512 = 0x0806  # RFC 8446
    ed25519 = 0x0807  # RFC 8446
    ed448 = 0x0808  # RFC 8446
    rsa_pss_pss_sha256 = 0x0809  # RFC 8446
    rsa_pss_pss_sha384 = 0x080A  # RFC 8446
    rsa_pss_pss_sha512 = 0x080B  # RFC 8446
    ecdsa_brainpoolP256r1tls13_sha256 = 0x081A  # RFC 8734
    ecdsa_brainpoolP384r1tls13_sha384 = 0x081B  # RFC 8734
    ecdsa_brainpoolP512r1tls13_sha512 = 0x081C  # RFC 8734
    mldsa44 = 0x0904  # draft-ietf-tls-mldsa
    mldsa65 = 0x0905  # draft-ietf-tls-mldsa
    mldsa87 = 0x0906  # draft-ietf-tls-mldsa


# ---------------------------------------------------------------------------
# Cipher suites (16-bit code points)
# ---------------------------------------------------------------------------


@unique
class CipherSuite(IntEnum):
    """TLS Cipher Suites registry (RFC 8446 §B.4, RFC 8447; 16 bits).

    Every assigned entry of the IANA registry.  Ranges the registry marks
    "Reserved" (0x001C-0x001D, 0x0047-0x0066, GREASE 0x?A?A,
    0xFEFE-0xFEFF, 0xFF00-0xFFFF) are not members; see ``NON_IANA_CIPHER_NAMES``
    for the deployed code points that live there.
    """

    # RFC 5246, RFC 4346 (EXPORT), RFC 5469 (DES/IDEA, historic), RFC 2712 (KRB5)
    TLS_NULL_WITH_NULL_NULL = 0x0000
    TLS_RSA_WITH_NULL_MD5 = 0x0001
    TLS_RSA_WITH_NULL_SHA = 0x0002
    TLS_RSA_EXPORT_WITH_RC4_40_MD5 = 0x0003
    TLS_RSA_WITH_RC4_128_MD5 = 0x0004
    TLS_RSA_WITH_RC4_128_SHA = 0x0005
    TLS_RSA_EXPORT_WITH_RC2_CBC_40_MD5 = 0x0006
    TLS_RSA_WITH_IDEA_CBC_SHA = 0x0007
    TLS_RSA_EXPORT_WITH_DES40_CBC_SHA = 0x0008
    TLS_RSA_WITH_DES_CBC_SHA = 0x0009
    TLS_RSA_WITH_3DES_EDE_CBC_SHA = 0x000A
    TLS_DH_DSS_EXPORT_WITH_DES40_CBC_SHA = 0x000B
    TLS_DH_DSS_WITH_DES_CBC_SHA = 0x000C
    TLS_DH_DSS_WITH_3DES_EDE_CBC_SHA = 0x000D
    TLS_DH_RSA_EXPORT_WITH_DES40_CBC_SHA = 0x000E
    TLS_DH_RSA_WITH_DES_CBC_SHA = 0x000F
    TLS_DH_RSA_WITH_3DES_EDE_CBC_SHA = 0x0010
    TLS_DHE_DSS_EXPORT_WITH_DES40_CBC_SHA = 0x0011
    TLS_DHE_DSS_WITH_DES_CBC_SHA = 0x0012
    TLS_DHE_DSS_WITH_3DES_EDE_CBC_SHA = 0x0013
    TLS_DHE_RSA_EXPORT_WITH_DES40_CBC_SHA = 0x0014
    TLS_DHE_RSA_WITH_DES_CBC_SHA = 0x0015
    TLS_DHE_RSA_WITH_3DES_EDE_CBC_SHA = 0x0016
    TLS_DH_anon_EXPORT_WITH_RC4_40_MD5 = 0x0017
    TLS_DH_anon_WITH_RC4_128_MD5 = 0x0018
    TLS_DH_anon_EXPORT_WITH_DES40_CBC_SHA = 0x0019
    TLS_DH_anon_WITH_DES_CBC_SHA = 0x001A
    TLS_DH_anon_WITH_3DES_EDE_CBC_SHA = 0x001B
    TLS_KRB5_WITH_DES_CBC_SHA = 0x001E
    TLS_KRB5_WITH_3DES_EDE_CBC_SHA = 0x001F
    TLS_KRB5_WITH_RC4_128_SHA = 0x0020
    TLS_KRB5_WITH_IDEA_CBC_SHA = 0x0021
    TLS_KRB5_WITH_DES_CBC_MD5 = 0x0022
    TLS_KRB5_WITH_3DES_EDE_CBC_MD5 = 0x0023
    TLS_KRB5_WITH_RC4_128_MD5 = 0x0024
    TLS_KRB5_WITH_IDEA_CBC_MD5 = 0x0025
    TLS_KRB5_EXPORT_WITH_DES_CBC_40_SHA = 0x0026
    TLS_KRB5_EXPORT_WITH_RC2_CBC_40_SHA = 0x0027
    TLS_KRB5_EXPORT_WITH_RC4_40_SHA = 0x0028
    TLS_KRB5_EXPORT_WITH_DES_CBC_40_MD5 = 0x0029
    TLS_KRB5_EXPORT_WITH_RC2_CBC_40_MD5 = 0x002A
    TLS_KRB5_EXPORT_WITH_RC4_40_MD5 = 0x002B
    # RFC 4785
    TLS_PSK_WITH_NULL_SHA = 0x002C
    TLS_DHE_PSK_WITH_NULL_SHA = 0x002D
    TLS_RSA_PSK_WITH_NULL_SHA = 0x002E
    # RFC 5246 (AES-CBC)
    TLS_RSA_WITH_AES_128_CBC_SHA = 0x002F
    TLS_DH_DSS_WITH_AES_128_CBC_SHA = 0x0030
    TLS_DH_RSA_WITH_AES_128_CBC_SHA = 0x0031
    TLS_DHE_DSS_WITH_AES_128_CBC_SHA = 0x0032
    TLS_DHE_RSA_WITH_AES_128_CBC_SHA = 0x0033
    TLS_DH_anon_WITH_AES_128_CBC_SHA = 0x0034
    TLS_RSA_WITH_AES_256_CBC_SHA = 0x0035
    TLS_DH_DSS_WITH_AES_256_CBC_SHA = 0x0036
    TLS_DH_RSA_WITH_AES_256_CBC_SHA = 0x0037
    TLS_DHE_DSS_WITH_AES_256_CBC_SHA = 0x0038
    TLS_DHE_RSA_WITH_AES_256_CBC_SHA = 0x0039
    TLS_DH_anon_WITH_AES_256_CBC_SHA = 0x003A
    TLS_RSA_WITH_NULL_SHA256 = 0x003B
    TLS_RSA_WITH_AES_128_CBC_SHA256 = 0x003C
    TLS_RSA_WITH_AES_256_CBC_SHA256 = 0x003D
    TLS_DH_DSS_WITH_AES_128_CBC_SHA256 = 0x003E
    TLS_DH_RSA_WITH_AES_128_CBC_SHA256 = 0x003F
    TLS_DHE_DSS_WITH_AES_128_CBC_SHA256 = 0x0040
    # RFC 5932 (Camellia)
    TLS_RSA_WITH_CAMELLIA_128_CBC_SHA = 0x0041
    TLS_DH_DSS_WITH_CAMELLIA_128_CBC_SHA = 0x0042
    TLS_DH_RSA_WITH_CAMELLIA_128_CBC_SHA = 0x0043
    TLS_DHE_DSS_WITH_CAMELLIA_128_CBC_SHA = 0x0044
    TLS_DHE_RSA_WITH_CAMELLIA_128_CBC_SHA = 0x0045
    TLS_DH_anon_WITH_CAMELLIA_128_CBC_SHA = 0x0046
    # RFC 5246
    TLS_DHE_RSA_WITH_AES_128_CBC_SHA256 = 0x0067
    TLS_DH_DSS_WITH_AES_256_CBC_SHA256 = 0x0068
    TLS_DH_RSA_WITH_AES_256_CBC_SHA256 = 0x0069
    TLS_DHE_DSS_WITH_AES_256_CBC_SHA256 = 0x006A
    TLS_DHE_RSA_WITH_AES_256_CBC_SHA256 = 0x006B
    TLS_DH_anon_WITH_AES_128_CBC_SHA256 = 0x006C
    TLS_DH_anon_WITH_AES_256_CBC_SHA256 = 0x006D
    # RFC 5932 (Camellia)
    TLS_RSA_WITH_CAMELLIA_256_CBC_SHA = 0x0084
    TLS_DH_DSS_WITH_CAMELLIA_256_CBC_SHA = 0x0085
    TLS_DH_RSA_WITH_CAMELLIA_256_CBC_SHA = 0x0086
    TLS_DHE_DSS_WITH_CAMELLIA_256_CBC_SHA = 0x0087
    TLS_DHE_RSA_WITH_CAMELLIA_256_CBC_SHA = 0x0088
    TLS_DH_anon_WITH_CAMELLIA_256_CBC_SHA = 0x0089
    # RFC 4279 (PSK)
    TLS_PSK_WITH_RC4_128_SHA = 0x008A
    TLS_PSK_WITH_3DES_EDE_CBC_SHA = 0x008B
    TLS_PSK_WITH_AES_128_CBC_SHA = 0x008C
    TLS_PSK_WITH_AES_256_CBC_SHA = 0x008D
    TLS_DHE_PSK_WITH_RC4_128_SHA = 0x008E
    TLS_DHE_PSK_WITH_3DES_EDE_CBC_SHA = 0x008F
    TLS_DHE_PSK_WITH_AES_128_CBC_SHA = 0x0090
    TLS_DHE_PSK_WITH_AES_256_CBC_SHA = 0x0091
    TLS_RSA_PSK_WITH_RC4_128_SHA = 0x0092
    TLS_RSA_PSK_WITH_3DES_EDE_CBC_SHA = 0x0093
    TLS_RSA_PSK_WITH_AES_128_CBC_SHA = 0x0094
    TLS_RSA_PSK_WITH_AES_256_CBC_SHA = 0x0095
    # RFC 4162 (SEED)
    TLS_RSA_WITH_SEED_CBC_SHA = 0x0096
    TLS_DH_DSS_WITH_SEED_CBC_SHA = 0x0097
    TLS_DH_RSA_WITH_SEED_CBC_SHA = 0x0098
    TLS_DHE_DSS_WITH_SEED_CBC_SHA = 0x0099
    TLS_DHE_RSA_WITH_SEED_CBC_SHA = 0x009A
    TLS_DH_anon_WITH_SEED_CBC_SHA = 0x009B
    # RFC 5288 (AES-GCM)
    TLS_RSA_WITH_AES_128_GCM_SHA256 = 0x009C
    TLS_RSA_WITH_AES_256_GCM_SHA384 = 0x009D
    TLS_DHE_RSA_WITH_AES_128_GCM_SHA256 = 0x009E
    TLS_DHE_RSA_WITH_AES_256_GCM_SHA384 = 0x009F
    TLS_DH_RSA_WITH_AES_128_GCM_SHA256 = 0x00A0
    TLS_DH_RSA_WITH_AES_256_GCM_SHA384 = 0x00A1
    TLS_DHE_DSS_WITH_AES_128_GCM_SHA256 = 0x00A2
    TLS_DHE_DSS_WITH_AES_256_GCM_SHA384 = 0x00A3
    TLS_DH_DSS_WITH_AES_128_GCM_SHA256 = 0x00A4
    TLS_DH_DSS_WITH_AES_256_GCM_SHA384 = 0x00A5
    TLS_DH_anon_WITH_AES_128_GCM_SHA256 = 0x00A6
    TLS_DH_anon_WITH_AES_256_GCM_SHA384 = 0x00A7
    # RFC 5487 (PSK with SHA-256/384 and AES-GCM)
    TLS_PSK_WITH_AES_128_GCM_SHA256 = 0x00A8
    TLS_PSK_WITH_AES_256_GCM_SHA384 = 0x00A9
    TLS_DHE_PSK_WITH_AES_128_GCM_SHA256 = 0x00AA
    TLS_DHE_PSK_WITH_AES_256_GCM_SHA384 = 0x00AB
    TLS_RSA_PSK_WITH_AES_128_GCM_SHA256 = 0x00AC
    TLS_RSA_PSK_WITH_AES_256_GCM_SHA384 = 0x00AD
    TLS_PSK_WITH_AES_128_CBC_SHA256 = 0x00AE
    TLS_PSK_WITH_AES_256_CBC_SHA384 = 0x00AF
    TLS_PSK_WITH_NULL_SHA256 = 0x00B0
    TLS_PSK_WITH_NULL_SHA384 = 0x00B1
    TLS_DHE_PSK_WITH_AES_128_CBC_SHA256 = 0x00B2
    TLS_DHE_PSK_WITH_AES_256_CBC_SHA384 = 0x00B3
    TLS_DHE_PSK_WITH_NULL_SHA256 = 0x00B4
    TLS_DHE_PSK_WITH_NULL_SHA384 = 0x00B5
    TLS_RSA_PSK_WITH_AES_128_CBC_SHA256 = 0x00B6
    TLS_RSA_PSK_WITH_AES_256_CBC_SHA384 = 0x00B7
    TLS_RSA_PSK_WITH_NULL_SHA256 = 0x00B8
    TLS_RSA_PSK_WITH_NULL_SHA384 = 0x00B9
    # RFC 5932 (Camellia with SHA-256)
    TLS_RSA_WITH_CAMELLIA_128_CBC_SHA256 = 0x00BA
    TLS_DH_DSS_WITH_CAMELLIA_128_CBC_SHA256 = 0x00BB
    TLS_DH_RSA_WITH_CAMELLIA_128_CBC_SHA256 = 0x00BC
    TLS_DHE_DSS_WITH_CAMELLIA_128_CBC_SHA256 = 0x00BD
    TLS_DHE_RSA_WITH_CAMELLIA_128_CBC_SHA256 = 0x00BE
    TLS_DH_anon_WITH_CAMELLIA_128_CBC_SHA256 = 0x00BF
    TLS_RSA_WITH_CAMELLIA_256_CBC_SHA256 = 0x00C0
    TLS_DH_DSS_WITH_CAMELLIA_256_CBC_SHA256 = 0x00C1
    TLS_DH_RSA_WITH_CAMELLIA_256_CBC_SHA256 = 0x00C2
    TLS_DHE_DSS_WITH_CAMELLIA_256_CBC_SHA256 = 0x00C3
    TLS_DHE_RSA_WITH_CAMELLIA_256_CBC_SHA256 = 0x00C4
    TLS_DH_anon_WITH_CAMELLIA_256_CBC_SHA256 = 0x00C5
    # RFC 8998 (ShangMi, TLS 1.3)
    TLS_SM4_GCM_SM3 = 0x00C6
    TLS_SM4_CCM_SM3 = 0x00C7
    # RFC 5746 (signalling cipher suite value)
    TLS_EMPTY_RENEGOTIATION_INFO_SCSV = 0x00FF
    # RFC 8446 (TLS 1.3)
    TLS_AES_128_GCM_SHA256 = 0x1301
    TLS_AES_256_GCM_SHA384 = 0x1302
    TLS_CHACHA20_POLY1305_SHA256 = 0x1303
    TLS_AES_128_CCM_SHA256 = 0x1304
    TLS_AES_128_CCM_8_SHA256 = 0x1305
    # draft-irtf-cfrg-aegis-aead (TLS 1.3)
    TLS_AEGIS_256_SHA384 = 0x1306
    TLS_AEGIS_128L_SHA256 = 0x1307
    # RFC 7507 (signalling cipher suite value)
    TLS_FALLBACK_SCSV = 0x5600
    # RFC 8422 (ECC, formerly RFC 4492)
    TLS_ECDH_ECDSA_WITH_NULL_SHA = 0xC001
    TLS_ECDH_ECDSA_WITH_RC4_128_SHA = 0xC002
    TLS_ECDH_ECDSA_WITH_3DES_EDE_CBC_SHA = 0xC003
    TLS_ECDH_ECDSA_WITH_AES_128_CBC_SHA = 0xC004
    TLS_ECDH_ECDSA_WITH_AES_256_CBC_SHA = 0xC005
    TLS_ECDHE_ECDSA_WITH_NULL_SHA = 0xC006
    TLS_ECDHE_ECDSA_WITH_RC4_128_SHA = 0xC007
    TLS_ECDHE_ECDSA_WITH_3DES_EDE_CBC_SHA = 0xC008
    TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA = 0xC009
    TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA = 0xC00A
    TLS_ECDH_RSA_WITH_NULL_SHA = 0xC00B
    TLS_ECDH_RSA_WITH_RC4_128_SHA = 0xC00C
    TLS_ECDH_RSA_WITH_3DES_EDE_CBC_SHA = 0xC00D
    TLS_ECDH_RSA_WITH_AES_128_CBC_SHA = 0xC00E
    TLS_ECDH_RSA_WITH_AES_256_CBC_SHA = 0xC00F
    TLS_ECDHE_RSA_WITH_NULL_SHA = 0xC010
    TLS_ECDHE_RSA_WITH_RC4_128_SHA = 0xC011
    TLS_ECDHE_RSA_WITH_3DES_EDE_CBC_SHA = 0xC012
    TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA = 0xC013
    TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA = 0xC014
    TLS_ECDH_anon_WITH_NULL_SHA = 0xC015
    TLS_ECDH_anon_WITH_RC4_128_SHA = 0xC016
    TLS_ECDH_anon_WITH_3DES_EDE_CBC_SHA = 0xC017
    TLS_ECDH_anon_WITH_AES_128_CBC_SHA = 0xC018
    TLS_ECDH_anon_WITH_AES_256_CBC_SHA = 0xC019
    # RFC 5054 (SRP)
    TLS_SRP_SHA_WITH_3DES_EDE_CBC_SHA = 0xC01A
    TLS_SRP_SHA_RSA_WITH_3DES_EDE_CBC_SHA = 0xC01B
    TLS_SRP_SHA_DSS_WITH_3DES_EDE_CBC_SHA = 0xC01C
    TLS_SRP_SHA_WITH_AES_128_CBC_SHA = 0xC01D
    TLS_SRP_SHA_RSA_WITH_AES_128_CBC_SHA = 0xC01E
    TLS_SRP_SHA_DSS_WITH_AES_128_CBC_SHA = 0xC01F
    TLS_SRP_SHA_WITH_AES_256_CBC_SHA = 0xC020
    TLS_SRP_SHA_RSA_WITH_AES_256_CBC_SHA = 0xC021
    TLS_SRP_SHA_DSS_WITH_AES_256_CBC_SHA = 0xC022
    # RFC 5289 (ECC with SHA-256/384 and AES-GCM)
    TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256 = 0xC023
    TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA384 = 0xC024
    TLS_ECDH_ECDSA_WITH_AES_128_CBC_SHA256 = 0xC025
    TLS_ECDH_ECDSA_WITH_AES_256_CBC_SHA384 = 0xC026
    TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256 = 0xC027
    TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA384 = 0xC028
    TLS_ECDH_RSA_WITH_AES_128_CBC_SHA256 = 0xC029
    TLS_ECDH_RSA_WITH_AES_256_CBC_SHA384 = 0xC02A
    TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256 = 0xC02B
    TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384 = 0xC02C
    TLS_ECDH_ECDSA_WITH_AES_128_GCM_SHA256 = 0xC02D
    TLS_ECDH_ECDSA_WITH_AES_256_GCM_SHA384 = 0xC02E
    TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256 = 0xC02F
    TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384 = 0xC030
    TLS_ECDH_RSA_WITH_AES_128_GCM_SHA256 = 0xC031
    TLS_ECDH_RSA_WITH_AES_256_GCM_SHA384 = 0xC032
    # RFC 5489 (ECDHE-PSK)
    TLS_ECDHE_PSK_WITH_RC4_128_SHA = 0xC033
    TLS_ECDHE_PSK_WITH_3DES_EDE_CBC_SHA = 0xC034
    TLS_ECDHE_PSK_WITH_AES_128_CBC_SHA = 0xC035
    TLS_ECDHE_PSK_WITH_AES_256_CBC_SHA = 0xC036
    TLS_ECDHE_PSK_WITH_AES_128_CBC_SHA256 = 0xC037
    TLS_ECDHE_PSK_WITH_AES_256_CBC_SHA384 = 0xC038
    TLS_ECDHE_PSK_WITH_NULL_SHA = 0xC039
    TLS_ECDHE_PSK_WITH_NULL_SHA256 = 0xC03A
    TLS_ECDHE_PSK_WITH_NULL_SHA384 = 0xC03B
    # RFC 6209 (ARIA)
    TLS_RSA_WITH_ARIA_128_CBC_SHA256 = 0xC03C
    TLS_RSA_WITH_ARIA_256_CBC_SHA384 = 0xC03D
    TLS_DH_DSS_WITH_ARIA_128_CBC_SHA256 = 0xC03E
    TLS_DH_DSS_WITH_ARIA_256_CBC_SHA384 = 0xC03F
    TLS_DH_RSA_WITH_ARIA_128_CBC_SHA256 = 0xC040
    TLS_DH_RSA_WITH_ARIA_256_CBC_SHA384 = 0xC041
    TLS_DHE_DSS_WITH_ARIA_128_CBC_SHA256 = 0xC042
    TLS_DHE_DSS_WITH_ARIA_256_CBC_SHA384 = 0xC043
    TLS_DHE_RSA_WITH_ARIA_128_CBC_SHA256 = 0xC044
    TLS_DHE_RSA_WITH_ARIA_256_CBC_SHA384 = 0xC045
    TLS_DH_anon_WITH_ARIA_128_CBC_SHA256 = 0xC046
    TLS_DH_anon_WITH_ARIA_256_CBC_SHA384 = 0xC047
    TLS_ECDHE_ECDSA_WITH_ARIA_128_CBC_SHA256 = 0xC048
    TLS_ECDHE_ECDSA_WITH_ARIA_256_CBC_SHA384 = 0xC049
    TLS_ECDH_ECDSA_WITH_ARIA_128_CBC_SHA256 = 0xC04A
    TLS_ECDH_ECDSA_WITH_ARIA_256_CBC_SHA384 = 0xC04B
    TLS_ECDHE_RSA_WITH_ARIA_128_CBC_SHA256 = 0xC04C
    TLS_ECDHE_RSA_WITH_ARIA_256_CBC_SHA384 = 0xC04D
    TLS_ECDH_RSA_WITH_ARIA_128_CBC_SHA256 = 0xC04E
    TLS_ECDH_RSA_WITH_ARIA_256_CBC_SHA384 = 0xC04F
    TLS_RSA_WITH_ARIA_128_GCM_SHA256 = 0xC050
    TLS_RSA_WITH_ARIA_256_GCM_SHA384 = 0xC051
    TLS_DHE_RSA_WITH_ARIA_128_GCM_SHA256 = 0xC052
    TLS_DHE_RSA_WITH_ARIA_256_GCM_SHA384 = 0xC053
    TLS_DH_RSA_WITH_ARIA_128_GCM_SHA256 = 0xC054
    TLS_DH_RSA_WITH_ARIA_256_GCM_SHA384 = 0xC055
    TLS_DHE_DSS_WITH_ARIA_128_GCM_SHA256 = 0xC056
    TLS_DHE_DSS_WITH_ARIA_256_GCM_SHA384 = 0xC057
    TLS_DH_DSS_WITH_ARIA_128_GCM_SHA256 = 0xC058
    TLS_DH_DSS_WITH_ARIA_256_GCM_SHA384 = 0xC059
    TLS_DH_anon_WITH_ARIA_128_GCM_SHA256 = 0xC05A
    TLS_DH_anon_WITH_ARIA_256_GCM_SHA384 = 0xC05B
    TLS_ECDHE_ECDSA_WITH_ARIA_128_GCM_SHA256 = 0xC05C
    TLS_ECDHE_ECDSA_WITH_ARIA_256_GCM_SHA384 = 0xC05D
    TLS_ECDH_ECDSA_WITH_ARIA_128_GCM_SHA256 = 0xC05E
    TLS_ECDH_ECDSA_WITH_ARIA_256_GCM_SHA384 = 0xC05F
    TLS_ECDHE_RSA_WITH_ARIA_128_GCM_SHA256 = 0xC060
    TLS_ECDHE_RSA_WITH_ARIA_256_GCM_SHA384 = 0xC061
    TLS_ECDH_RSA_WITH_ARIA_128_GCM_SHA256 = 0xC062
    TLS_ECDH_RSA_WITH_ARIA_256_GCM_SHA384 = 0xC063
    TLS_PSK_WITH_ARIA_128_CBC_SHA256 = 0xC064
    TLS_PSK_WITH_ARIA_256_CBC_SHA384 = 0xC065
    TLS_DHE_PSK_WITH_ARIA_128_CBC_SHA256 = 0xC066
    TLS_DHE_PSK_WITH_ARIA_256_CBC_SHA384 = 0xC067
    TLS_RSA_PSK_WITH_ARIA_128_CBC_SHA256 = 0xC068
    TLS_RSA_PSK_WITH_ARIA_256_CBC_SHA384 = 0xC069
    TLS_PSK_WITH_ARIA_128_GCM_SHA256 = 0xC06A
    TLS_PSK_WITH_ARIA_256_GCM_SHA384 = 0xC06B
    TLS_DHE_PSK_WITH_ARIA_128_GCM_SHA256 = 0xC06C
    TLS_DHE_PSK_WITH_ARIA_256_GCM_SHA384 = 0xC06D
    TLS_RSA_PSK_WITH_ARIA_128_GCM_SHA256 = 0xC06E
    TLS_RSA_PSK_WITH_ARIA_256_GCM_SHA384 = 0xC06F
    TLS_ECDHE_PSK_WITH_ARIA_128_CBC_SHA256 = 0xC070
    TLS_ECDHE_PSK_WITH_ARIA_256_CBC_SHA384 = 0xC071
    # RFC 6367 (Camellia with ECC, GCM)
    TLS_ECDHE_ECDSA_WITH_CAMELLIA_128_CBC_SHA256 = 0xC072
    TLS_ECDHE_ECDSA_WITH_CAMELLIA_256_CBC_SHA384 = 0xC073
    TLS_ECDH_ECDSA_WITH_CAMELLIA_128_CBC_SHA256 = 0xC074
    TLS_ECDH_ECDSA_WITH_CAMELLIA_256_CBC_SHA384 = 0xC075
    TLS_ECDHE_RSA_WITH_CAMELLIA_128_CBC_SHA256 = 0xC076
    TLS_ECDHE_RSA_WITH_CAMELLIA_256_CBC_SHA384 = 0xC077
    TLS_ECDH_RSA_WITH_CAMELLIA_128_CBC_SHA256 = 0xC078
    TLS_ECDH_RSA_WITH_CAMELLIA_256_CBC_SHA384 = 0xC079
    TLS_RSA_WITH_CAMELLIA_128_GCM_SHA256 = 0xC07A
    TLS_RSA_WITH_CAMELLIA_256_GCM_SHA384 = 0xC07B
    TLS_DHE_RSA_WITH_CAMELLIA_128_GCM_SHA256 = 0xC07C
    TLS_DHE_RSA_WITH_CAMELLIA_256_GCM_SHA384 = 0xC07D
    TLS_DH_RSA_WITH_CAMELLIA_128_GCM_SHA256 = 0xC07E
    TLS_DH_RSA_WITH_CAMELLIA_256_GCM_SHA384 = 0xC07F
    TLS_DHE_DSS_WITH_CAMELLIA_128_GCM_SHA256 = 0xC080
    TLS_DHE_DSS_WITH_CAMELLIA_256_GCM_SHA384 = 0xC081
    TLS_DH_DSS_WITH_CAMELLIA_128_GCM_SHA256 = 0xC082
    TLS_DH_DSS_WITH_CAMELLIA_256_GCM_SHA384 = 0xC083
    TLS_DH_anon_WITH_CAMELLIA_128_GCM_SHA256 = 0xC084
    TLS_DH_anon_WITH_CAMELLIA_256_GCM_SHA384 = 0xC085
    TLS_ECDHE_ECDSA_WITH_CAMELLIA_128_GCM_SHA256 = 0xC086
    TLS_ECDHE_ECDSA_WITH_CAMELLIA_256_GCM_SHA384 = 0xC087
    TLS_ECDH_ECDSA_WITH_CAMELLIA_128_GCM_SHA256 = 0xC088
    TLS_ECDH_ECDSA_WITH_CAMELLIA_256_GCM_SHA384 = 0xC089
    TLS_ECDHE_RSA_WITH_CAMELLIA_128_GCM_SHA256 = 0xC08A
    TLS_ECDHE_RSA_WITH_CAMELLIA_256_GCM_SHA384 = 0xC08B
    TLS_ECDH_RSA_WITH_CAMELLIA_128_GCM_SHA256 = 0xC08C
    TLS_ECDH_RSA_WITH_CAMELLIA_256_GCM_SHA384 = 0xC08D
    TLS_PSK_WITH_CAMELLIA_128_GCM_SHA256 = 0xC08E
    TLS_PSK_WITH_CAMELLIA_256_GCM_SHA384 = 0xC08F
    TLS_DHE_PSK_WITH_CAMELLIA_128_GCM_SHA256 = 0xC090
    TLS_DHE_PSK_WITH_CAMELLIA_256_GCM_SHA384 = 0xC091
    TLS_RSA_PSK_WITH_CAMELLIA_128_GCM_SHA256 = 0xC092
    TLS_RSA_PSK_WITH_CAMELLIA_256_GCM_SHA384 = 0xC093
    TLS_PSK_WITH_CAMELLIA_128_CBC_SHA256 = 0xC094
    TLS_PSK_WITH_CAMELLIA_256_CBC_SHA384 = 0xC095
    TLS_DHE_PSK_WITH_CAMELLIA_128_CBC_SHA256 = 0xC096
    TLS_DHE_PSK_WITH_CAMELLIA_256_CBC_SHA384 = 0xC097
    TLS_RSA_PSK_WITH_CAMELLIA_128_CBC_SHA256 = 0xC098
    TLS_RSA_PSK_WITH_CAMELLIA_256_CBC_SHA384 = 0xC099
    TLS_ECDHE_PSK_WITH_CAMELLIA_128_CBC_SHA256 = 0xC09A
    TLS_ECDHE_PSK_WITH_CAMELLIA_256_CBC_SHA384 = 0xC09B
    # RFC 6655 (AES-CCM)
    TLS_RSA_WITH_AES_128_CCM = 0xC09C
    TLS_RSA_WITH_AES_256_CCM = 0xC09D
    TLS_DHE_RSA_WITH_AES_128_CCM = 0xC09E
    TLS_DHE_RSA_WITH_AES_256_CCM = 0xC09F
    TLS_RSA_WITH_AES_128_CCM_8 = 0xC0A0
    TLS_RSA_WITH_AES_256_CCM_8 = 0xC0A1
    TLS_DHE_RSA_WITH_AES_128_CCM_8 = 0xC0A2
    TLS_DHE_RSA_WITH_AES_256_CCM_8 = 0xC0A3
    TLS_PSK_WITH_AES_128_CCM = 0xC0A4
    TLS_PSK_WITH_AES_256_CCM = 0xC0A5
    TLS_DHE_PSK_WITH_AES_128_CCM = 0xC0A6
    TLS_DHE_PSK_WITH_AES_256_CCM = 0xC0A7
    TLS_PSK_WITH_AES_128_CCM_8 = 0xC0A8
    TLS_PSK_WITH_AES_256_CCM_8 = 0xC0A9
    TLS_PSK_DHE_WITH_AES_128_CCM_8 = 0xC0AA  # sic: IANA spells it PSK_DHE
    TLS_PSK_DHE_WITH_AES_256_CCM_8 = 0xC0AB  # sic: IANA spells it PSK_DHE
    # RFC 7251 (ECC with AES-CCM)
    TLS_ECDHE_ECDSA_WITH_AES_128_CCM = 0xC0AC
    TLS_ECDHE_ECDSA_WITH_AES_256_CCM = 0xC0AD
    TLS_ECDHE_ECDSA_WITH_AES_128_CCM_8 = 0xC0AE
    TLS_ECDHE_ECDSA_WITH_AES_256_CCM_8 = 0xC0AF
    # RFC 8492 (ECCPWD)
    TLS_ECCPWD_WITH_AES_128_GCM_SHA256 = 0xC0B0
    TLS_ECCPWD_WITH_AES_256_GCM_SHA384 = 0xC0B1
    TLS_ECCPWD_WITH_AES_128_CCM_SHA256 = 0xC0B2
    TLS_ECCPWD_WITH_AES_256_CCM_SHA384 = 0xC0B3
    # RFC 9150 (integrity-only, TLS 1.3)
    TLS_SHA256_SHA256 = 0xC0B4
    TLS_SHA384_SHA384 = 0xC0B5
    # RFC 9189 (GOST, TLS 1.2)
    TLS_GOSTR341112_256_WITH_KUZNYECHIK_CTR_OMAC = 0xC100
    TLS_GOSTR341112_256_WITH_MAGMA_CTR_OMAC = 0xC101
    TLS_GOSTR341112_256_WITH_28147_CNT_IMIT = 0xC102
    # RFC 9367 (GOST, TLS 1.3)
    TLS_GOSTR341112_256_WITH_KUZNYECHIK_MGM_L = 0xC103
    TLS_GOSTR341112_256_WITH_MAGMA_MGM_L = 0xC104
    TLS_GOSTR341112_256_WITH_KUZNYECHIK_MGM_S = 0xC105
    TLS_GOSTR341112_256_WITH_MAGMA_MGM_S = 0xC106
    # RFC 7905 (ChaCha20-Poly1305)
    TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256 = 0xCCA8
    TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256 = 0xCCA9
    TLS_DHE_RSA_WITH_CHACHA20_POLY1305_SHA256 = 0xCCAA
    TLS_PSK_WITH_CHACHA20_POLY1305_SHA256 = 0xCCAB
    TLS_ECDHE_PSK_WITH_CHACHA20_POLY1305_SHA256 = 0xCCAC
    TLS_DHE_PSK_WITH_CHACHA20_POLY1305_SHA256 = 0xCCAD
    TLS_RSA_PSK_WITH_CHACHA20_POLY1305_SHA256 = 0xCCAE
    # RFC 8442 (ECDHE-PSK with AEAD)
    TLS_ECDHE_PSK_WITH_AES_128_GCM_SHA256 = 0xD001
    TLS_ECDHE_PSK_WITH_AES_256_GCM_SHA384 = 0xD002
    TLS_ECDHE_PSK_WITH_AES_128_CCM_8_SHA256 = 0xD003
    TLS_ECDHE_PSK_WITH_AES_128_CCM_SHA256 = 0xD005


# ---------------------------------------------------------------------------
# Code points outside the IANA registries that real captures still contain.
# Names are the ones the defining draft / vendor used (Zeek's spelling where
# the draft name collides with a later IANA name, e.g. the ``_OLD`` ChaCha20).
# ---------------------------------------------------------------------------

#: Cipher suites seen on the wire but never (or no longer) assigned by IANA.
NON_IANA_CIPHER_NAMES: dict[int, str] = {
    # SSL 3.0 (draft-freier-ssl-version3); IANA marks 0x001C-0x001D reserved.
    0x001C: "SSL_FORTEZZA_KEA_WITH_NULL_SHA",
    0x001D: "SSL_FORTEZZA_KEA_WITH_FORTEZZA_CBC_SHA",
    # draft-ietf-tls-56-bit-ciphersuites (1024-bit "export" suites, old MSIE/Java).
    0x0060: "TLS_RSA_EXPORT1024_WITH_RC4_56_MD5",
    0x0061: "TLS_RSA_EXPORT1024_WITH_RC2_CBC_56_MD5",
    0x0062: "TLS_RSA_EXPORT1024_WITH_DES_CBC_SHA",
    0x0063: "TLS_DHE_DSS_EXPORT1024_WITH_DES_CBC_SHA",
    0x0064: "TLS_RSA_EXPORT1024_WITH_RC4_56_SHA",
    0x0065: "TLS_DHE_DSS_EXPORT1024_WITH_RC4_56_SHA",
    0x0066: "TLS_DHE_DSS_WITH_RC4_128_SHA",
    # draft-ietf-tls-openpgp-keys (RIPEMD-160 suites, GnuTLS).
    0x0072: "TLS_DHE_DSS_WITH_3DES_EDE_CBC_RMD",
    0x0073: "TLS_DHE_DSS_WITH_AES_128_CBC_RMD",
    0x0074: "TLS_DHE_DSS_WITH_AES_256_CBC_RMD",
    0x0077: "TLS_DHE_RSA_WITH_3DES_EDE_CBC_RMD",
    0x0078: "TLS_DHE_RSA_WITH_AES_128_CBC_RMD",
    0x0079: "TLS_DHE_RSA_WITH_AES_256_CBC_RMD",
    0x007C: "TLS_RSA_WITH_3DES_EDE_CBC_RMD",
    0x007D: "TLS_RSA_WITH_AES_128_CBC_RMD",
    0x007E: "TLS_RSA_WITH_AES_256_CBC_RMD",
    # draft-chudov-cryptopro-cptls (legacy GOST suites, CryptoPro / OpenSSL gost engine).
    0x0080: "TLS_GOSTR341094_WITH_28147_CNT_IMIT",
    0x0081: "TLS_GOSTR341001_WITH_28147_CNT_IMIT",
    0x0082: "TLS_GOSTR341094_WITH_NULL_GOSTR3411",
    0x0083: "TLS_GOSTR341001_WITH_NULL_GOSTR3411",
    # Google CECPQ1 post-quantum experiment (Chrome 54, 2016).
    0x16B7: "TLS_CECPQ1_RSA_WITH_CHACHA20_POLY1305_SHA256",
    0x16B8: "TLS_CECPQ1_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
    0x16B9: "TLS_CECPQ1_RSA_WITH_AES_256_GCM_SHA384",
    0x16BA: "TLS_CECPQ1_ECDSA_WITH_AES_256_GCM_SHA384",
    # draft-cragie-tls-ecjpake (Thread / mbed TLS).
    0xC0FF: "TLS_ECJPAKE_WITH_AES_128_CCM_8",
    # draft-agl-tls-chacha20poly1305 (pre-RFC 7905 ChaCha20, old Chrome/BoringSSL).
    # The draft used the RFC 7905 names; "_OLD" is Zeek's disambiguating suffix.
    0xCC13: "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256_OLD",
    0xCC14: "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256_OLD",
    0xCC15: "TLS_DHE_RSA_WITH_CHACHA20_POLY1305_SHA256_OLD",
    # Netscape FIPS suites (IANA reserves 0xFEFE-0xFEFF); 0xFFE0/0xFFE1 are the
    # later Netscape re-numbering of the same two suites, hence the same names.
    0xFEFE: "SSL_RSA_FIPS_WITH_DES_CBC_SHA",
    0xFEFF: "SSL_RSA_FIPS_WITH_3DES_EDE_CBC_SHA",
    0xFFE0: "SSL_RSA_FIPS_WITH_3DES_EDE_CBC_SHA",
    0xFFE1: "SSL_RSA_FIPS_WITH_DES_CBC_SHA",
    # OpenSSL's SSLv2-cipher-in-SSLv3 private-use code points.
    0xFF80: "SSL_RSA_WITH_RC2_CBC_MD5",
    0xFF81: "SSL_RSA_WITH_IDEA_CBC_MD5",
    0xFF82: "SSL_RSA_WITH_DES_CBC_MD5",
    0xFF83: "SSL_RSA_WITH_3DES_EDE_CBC_MD5",
}

#: SSLv2 CIPHER-KINDS (3-byte values in an SSLv2 CLIENT-HELLO), draft-hickman-netscape-ssl-00.
#: A TLS suite offered inside an SSLv2 hello is 0x00XXYY and is named by CIPHER_NAMES.
SSLV2_CIPHER_KINDS: dict[int, str] = {
    0x010080: "SSL_CK_RC4_128_WITH_MD5",
    0x020080: "SSL_CK_RC4_128_EXPORT40_WITH_MD5",
    0x030080: "SSL_CK_RC2_128_CBC_WITH_MD5",
    0x040080: "SSL_CK_RC2_128_CBC_EXPORT40_WITH_MD5",
    0x050080: "SSL_CK_IDEA_128_CBC_WITH_MD5",
    0x060040: "SSL_CK_DES_64_CBC_WITH_MD5",
    0x0700C0: "SSL_CK_DES_192_EDE3_CBC_WITH_MD5",
}

#: Extensions seen on the wire outside the IANA registry.
NON_IANA_EXTENSION_NAMES: dict[int, str] = {
    # TLS 1.3 drafts <= 22 carried key_share at 40 (IANA: reserved); Zeek's name.
    40: "key_share_old",
    # draft-ietf-tls-tls13-13..18 NewSessionTicket extension (IANA: reserved).
    46: "ticket_early_data_info",
    13172: "next_protocol_negotiation",  # draft-agl-tls-nextprotoneg (NPN)
    13175: "origin_bound_certificates",  # draft-balfanz-tls-obc
    13180: "encrypted_client_certificates",  # Google experiment
    17513: "application_settings_old",  # draft-vvv-tls-alps, first code point (BoringSSL name)
    17613: "application_settings",  # draft-vvv-tls-alps, current Chrome code point (BoringSSL name)
    30031: "channel_id_old",  # draft-balfanz-tls-channelid (BoringSSL/Wireshark name)
    30032: "channel_id",  # draft-balfanz-tls-channelid (BoringSSL/Wireshark name)
    35655: "padding",  # pre-RFC 7685 code point used by Chrome before 21 was assigned
    0xFFCE: "encrypted_server_name",  # draft-ietf-tls-esni (ESNI, before ECH)
}

#: Named groups seen on the wire outside the IANA registry.
NON_IANA_GROUP_NAMES: dict[int, str] = {
    0x11EE: "curveSM2MLKEM768",  # draft-yang-tls-hybrid-sm2-mlkem (Zeek's spelling)
    0x4138: "CECPQ2",  # Google CECPQ2 (HRSS+X25519) experiment, Chrome 2019
}

#: TLS 1.2 (HashAlgorithm, SignatureAlgorithm) pairs (RFC 5246 §7.4.1.4.1) that
#: have no SignatureScheme registration.  Named ``<sig>_<hash>`` like the
#: registered rsa_pkcs1_sha1 / ecdsa_sha1, as OpenSSL and Wireshark do.
NON_IANA_SIGALG_NAMES: dict[int, str] = {
    0x0101: "rsa_pkcs1_md5",
    0x0102: "dsa_md5",
    0x0103: "ecdsa_md5",
    0x0202: "dsa_sha1",
    0x0301: "rsa_pkcs1_sha224",
    0x0302: "dsa_sha224",
    0x0303: "ecdsa_sha224",
    0x0402: "dsa_sha256",
    0x0502: "dsa_sha384",
    0x0602: "dsa_sha512",
}

#: Handshake messages seen on the wire outside the IANA registry.
NON_IANA_HANDSHAKE_NAMES: dict[int, str] = {
    67: "next_protocol",  # draft-agl-tls-nextprotoneg (NPN's NextProtocol message)
}


# ---------------------------------------------------------------------------
# Lookup dicts, built once at import.  Each holds everything its lookup
# function names: the IANA enum first, then the non-IANA extras (which never
# override an IANA registration).
# ---------------------------------------------------------------------------


def _names(enum_cls: type[IntEnum], *extras: dict[int, str]) -> dict[int, str]:
    table: dict[int, str] = {}
    for extra in extras:
        table.update(extra)
    table.update({member.value: member.name for member in enum_cls})
    return table


CONTENT_TYPE_NAMES: dict[int, str] = _names(ContentType)
HANDSHAKE_NAMES: dict[int, str] = _names(HandshakeType, NON_IANA_HANDSHAKE_NAMES)
ALERT_LEVEL_NAMES: dict[int, str] = _names(AlertLevel)
ALERT_NAMES: dict[int, str] = _names(AlertDescription)
EXTENSION_NAMES: dict[int, str] = _names(ExtensionType, NON_IANA_EXTENSION_NAMES)
GROUP_NAMES: dict[int, str] = _names(NamedGroup, NON_IANA_GROUP_NAMES)
SIGALG_NAMES: dict[int, str] = _names(SignatureScheme, NON_IANA_SIGALG_NAMES)
#: IANA suites, the non-IANA 2-byte suites, and the 3-byte SSLv2 cipher kinds.
CIPHER_NAMES: dict[int, str] = _names(CipherSuite, SSLV2_CIPHER_KINDS, NON_IANA_CIPHER_NAMES)
EC_POINT_FORMAT_NAMES: dict[int, str] = _names(ECPointFormat)
EC_CURVE_TYPE_NAMES: dict[int, str] = _names(ECCurveType)
CLIENT_CERTIFICATE_TYPE_NAMES: dict[int, str] = _names(ClientCertificateType)
HASH_ALGORITHM_NAMES: dict[int, str] = _names(HashAlgorithm)
SIGNATURE_ALGORITHM_NAMES: dict[int, str] = _names(SignatureAlgorithm)

#: The 16 GREASE values of RFC 8701 (0x0A0A, 0x1A1A, ..., 0xFAFA).
GREASE_VALUES: frozenset[int] = frozenset(((n << 4) | 0x0A) * 0x0101 for n in range(16))

# Hex digits used in ``unknown-0x...`` for each registry: 2 for the 8-bit
# registries, 4 for the 16-bit ones.  Keyed by id() of the enum class / dict,
# which live as long as the module.
_EIGHT_BIT: tuple[object, ...] = (
    ContentType,
    HandshakeType,
    AlertLevel,
    AlertDescription,
    ECPointFormat,
    ECCurveType,
    ClientCertificateType,
    HashAlgorithm,
    SignatureAlgorithm,
    CONTENT_TYPE_NAMES,
    HANDSHAKE_NAMES,
    ALERT_LEVEL_NAMES,
    ALERT_NAMES,
    EC_POINT_FORMAT_NAMES,
    EC_CURVE_TYPE_NAMES,
    CLIENT_CERTIFICATE_TYPE_NAMES,
    HASH_ALGORITHM_NAMES,
    SIGNATURE_ALGORITHM_NAMES,
)
_EIGHT_BIT_IDS: frozenset[int] = frozenset(id(t) for t in _EIGHT_BIT)

# Enum class -> lookup dict, so name_of(SomeEnum, v) costs one dict lookup.
_ENUM_TABLES: dict[int, dict[int, str]] = {
    id(ContentType): CONTENT_TYPE_NAMES,
    id(HandshakeType): HANDSHAKE_NAMES,
    id(AlertLevel): ALERT_LEVEL_NAMES,
    id(AlertDescription): ALERT_NAMES,
    id(ExtensionType): EXTENSION_NAMES,
    id(NamedGroup): GROUP_NAMES,
    id(SignatureScheme): SIGALG_NAMES,
    id(CipherSuite): CIPHER_NAMES,
    id(ECPointFormat): EC_POINT_FORMAT_NAMES,
    id(ECCurveType): EC_CURVE_TYPE_NAMES,
    id(ClientCertificateType): CLIENT_CERTIFICATE_TYPE_NAMES,
    id(HashAlgorithm): HASH_ALGORITHM_NAMES,
    id(SignatureAlgorithm): SIGNATURE_ALGORITHM_NAMES,
}


# ---------------------------------------------------------------------------
# Lookup functions.  None of them raises, whatever it is given.
# ---------------------------------------------------------------------------


def _unknown(value: object, digits: int) -> str:
    if isinstance(value, int):
        if value < 0:
            return "unknown-%d" % value
        return "unknown-0x%0*x" % (digits, value)
    return "unknown-" + type(value).__name__


def is_grease(value: object) -> bool:
    """True for the 16 reserved GREASE values of RFC 8701 (0x?A?A, both bytes equal)."""
    return isinstance(value, int) and value in GREASE_VALUES


def grease_name(value: int) -> str:
    """``grease-0x0a0a`` style label (meaningful only when ``is_grease(value)``)."""
    return "grease-0x%04x" % value


def _lookup16(table: dict[int, str], value: object) -> str:
    if isinstance(value, int):
        name = table.get(value)
        if name is not None:
            return name
        if value in GREASE_VALUES:
            return "grease-0x%04x" % value
    return _unknown(value, 4)


def _lookup8(table: dict[int, str], value: object) -> str:
    if isinstance(value, int):
        name = table.get(value)
        if name is not None:
            return name
    return _unknown(value, 2)


def name_of(table_or_enum: dict[int, str] | type[IntEnum], value: object) -> str:
    """Name of ``value`` in a registry given as one of the enums or ``*_NAMES`` dicts.

    Returns the registered name, ``grease-0x?a?a`` for GREASE in a 16-bit registry,
    or ``unknown-0x%02x`` / ``unknown-0x%04x`` (8-bit / 16-bit registry).  An
    unregistered table is treated as 16-bit.  Never raises.
    """
    key = id(table_or_enum)
    table: dict[int, str] | None
    if isinstance(table_or_enum, dict):
        table = table_or_enum
    else:
        table = _ENUM_TABLES.get(key)
        if table is None:
            if isinstance(table_or_enum, type) and issubclass(table_or_enum, IntEnum):
                table = {m.value: m.name for m in table_or_enum}
            else:  # not a registry at all: nothing can be named
                table = {}
    try:
        if key in _EIGHT_BIT_IDS:
            return _lookup8(table, value)
        return _lookup16(table, value)
    except TypeError:  # unhashable value
        return _unknown(value, 4)


def cipher_name(value: object) -> str:
    """IANA name of a cipher suite (non-IANA and SSLv2 kinds included)."""
    if isinstance(value, int) and value > 0xFFFF:
        name = SSLV2_CIPHER_KINDS.get(value)
        return name if name is not None else _unknown(value, 6)
    return _lookup16(CIPHER_NAMES, value)


def extension_name(value: object) -> str:
    """IANA name of an extension type."""
    return _lookup16(EXTENSION_NAMES, value)


def group_name(value: object) -> str:
    """IANA name of a supported group (named curve / FFDHE group / hybrid KEM)."""
    return _lookup16(GROUP_NAMES, value)


def sigalg_name(value: object) -> str:
    """IANA name of a SignatureScheme (TLS 1.2 hash/signature pairs included)."""
    return _lookup16(SIGALG_NAMES, value)


def alert_description_name(value: object) -> str:
    """IANA name of an alert description."""
    return _lookup8(ALERT_NAMES, value)


def alert_level_name(value: object) -> str:
    """``warning`` / ``fatal``."""
    return _lookup8(ALERT_LEVEL_NAMES, value)


def handshake_name(value: object) -> str:
    """IANA name of a handshake message type."""
    return _lookup8(HANDSHAKE_NAMES, value)


def content_type_name(value: object) -> str:
    """IANA name of a record content type."""
    return _lookup8(CONTENT_TYPE_NAMES, value)


def ec_point_format_name(value: object) -> str:
    """IANA name of an EC point format."""
    return _lookup8(EC_POINT_FORMAT_NAMES, value)


# ---------------------------------------------------------------------------
# Protocol versions
# ---------------------------------------------------------------------------

_VERSION_NAMES: dict[int, str] = {
    0x0002: "SSLv2",  # SSLv2 CLIENT-HELLO version field
    0x0200: "SSLv2",  # SSLv2 as written in an SSLv3-style header
    0x0300: "SSLv3",  # RFC 6101
    0x0301: "TLSv1.0",  # RFC 2246
    0x0302: "TLSv1.1",  # RFC 4346
    0x0303: "TLSv1.2",  # RFC 5246
    0x0304: "TLSv1.3",  # RFC 8446
    # Facebook Fizz's private TLS 1.3 draft versions (fizz ProtocolVersion
    # tls_1_3_23_fb / tls_1_3_26_fb, wire-identical to drafts 23 / 26).
    0xFB17: "TLSv1.3-draft23-fb",
    0xFB1A: "TLSv1.3-draft26-fb",
    0xFEFF: "DTLSv1.0",  # RFC 4347
    0xFEFD: "DTLSv1.2",  # RFC 6347
    0xFEFC: "DTLSv1.3",  # RFC 9147
}


def version_name(value: object) -> str:
    """Human name of a (D)TLS protocol version: ``TLSv1.2``, ``TLSv1.3-draft23``, ...

    0x7FNN is TLS 1.3 draft NN (decimal).  GREASE (RFC 8701, seen in
    supported_versions) gives ``grease-0x?a?a``; anything else ``unknown-0x%04x``.
    """
    if isinstance(value, int):
        name = _VERSION_NAMES.get(value)
        if name is not None:
            return name
        if value >> 8 == 0x7F:
            return "TLSv1.3-draft%d" % (value & 0xFF)
        if value in GREASE_VALUES:
            return "grease-0x%04x" % value
    return _unknown(value, 4)


#: TLS 1.3 code points besides 0x0304 and the drafts 0x7fNN: pre-standard experiments built
#: on the drafts (Facebook's fizz 0x7e01/0x7e02, Google's 0xfb17/0xfb1a)
TLS13_EXPERIMENTS = frozenset({0x7E01, 0x7E02, 0xFB17, 0xFB1A})
_TLS13_EXPERIMENT_NAMES = frozenset(_unknown(v, 4) for v in TLS13_EXPERIMENTS)


def is_tls13(version: int) -> bool:
    """RFC 8446's version, its drafts (0x7fNN) and the experiments built on them: the one
    definition of "TLS 1.3" (the sensor decides from the code, the analyzer from its name)."""
    return version == 0x0304 or (version >> 8) == 0x7F or version in TLS13_EXPERIMENTS


def is_tls13_name(name: object) -> bool:
    """:func:`is_tls13` of the version :func:`version_name` rendered as ``name``."""
    return isinstance(name, str) and (name.startswith("TLSv1.3") or name in _TLS13_EXPERIMENT_NAMES)


_ZEEK_VERSION_NAMES: dict[int, str] = {
    0x0002: "SSLv2",
    0x0300: "SSLv3",
    0x0301: "TLSv10",
    0x0302: "TLSv11",
    0x0303: "TLSv12",
    0x0304: "TLSv13",
    0xFEFF: "DTLSv10",
    0xFEFD: "DTLSv12",
    0xFEFC: "DTLSv13",
}


def zeek_version_name(value: object) -> str:
    """Zeek's ``SSL::version_strings`` spelling, for the conformance suite.

    Reproduces Zeek's default function exactly, quirks included: a version whose
    integer quotient by 0xFF is 0x7F is ``TLSv13-draft<v % 0x7F>``, anything else
    unknown is ``unknown-<decimal>`` (e.g. 0x7E01 -> ``unknown-32257``).
    """
    if not isinstance(value, int):
        return _unknown(value, 4)
    name = _ZEEK_VERSION_NAMES.get(value)
    if name is not None:
        return name
    if value >= 0 and value // 0xFF == 0x7F:
        return "TLSv13-draft%d" % (value % 0x7F)
    return "unknown-%d" % value
