"""Endpoint hints: what a connection's own TLS library reported about it (issue 13), as the
sensor joins them to a summary (field ``endpoint_hints``, docs/summary-schema.md) -- the raw
form, its shape check, its JSON rendering and the OpenSSL code tables both ends name codes with.

The field is optional and versioned: a summary carries it only when the sensor ran with
``--endpoint-hints`` and a hooked library reported something about that connection; its value
holds its own version (:data:`HINTS_VERSION`), so a reader that does not know a version ignores
the field (and an analyzer older than the field ignores its msgpack key altogether).

Raw form (msgpack and the raw summary)::

    {"v": 1, "endpoints": [{"side": 0|1, "pid": int, "comm": str, "library": str,
                            "verify_error": int|None, "verify_depth": int|None,
                            "ssl_errors": [int, ...]}, ...]}

* ``side``: which end of the connection the reporting process is (0 client, 1 server), from its
  socket's local address;
* ``pid``, ``comm``: the process (thread group id as the host sees it) and its thread's name;
* ``library``: the path of the OpenSSL copy that reported it;
* ``verify_error`` / ``verify_depth``: the certificate verification result of that endpoint
  (``X509_V_ERR_*``; depth of the certificate it is about, 0 = the peer's leaf; None unknown);
* ``ssl_errors``: the reasons of the errors the library raised on that connection (lib SSL,
  ``SSL_R_*``, in order, consecutive repeats folded, at most :data:`MAX_ERRORS`); a *received*
  fatal alert is ``1000 + its description`` (OpenSSL's ``SSL_AD_REASON_OFFSET``).

Nothing else is ever in a hint: no key material, no plaintext, no certificate, no name or
address the summary does not already hold (docs/endpoint-hints.md says what is read).
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from proto import names

__all__ = ["HINTS_VERSION", "ENDPOINT_KEYS", "MAX_ENDPOINTS", "MAX_ERRORS", "SSL_AD_REASON_OFFSET",
           "X509_ERRORS", "SSL_REASONS", "check_hints", "hints_to_json", "x509_error_name",
           "x509_error_text", "ssl_reason_text", "alert_received", "alerts_sent", "make_endpoint"]

HINTS_VERSION = 1
#: the keys of one endpoint's raw hint, and nothing else
ENDPOINT_KEYS = ("side", "pid", "comm", "library", "verify_error", "verify_depth", "ssl_errors")
MAX_ENDPOINTS = 4           # two ends, each possibly two processes (a fork that kept the socket)
MAX_ERRORS = 8
MAX_COMM = 16
MAX_LIBRARY = 256
#: OpenSSL: a received fatal alert is raised as reason SSL_AD_REASON_OFFSET + its description
SSL_AD_REASON_OFFSET = 1000

#: X509_V_* code -> (name, OpenSSL's X509_verify_cert_error_string), OpenSSL 3.0
X509_ERRORS: Mapping[int, tuple[str, str]] = {
    0: ('X509_V_OK', 'ok'),
    1: ('X509_V_ERR_UNSPECIFIED', 'unspecified certificate verification error'),
    2: ('X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT', 'unable to get issuer certificate'),
    3: ('X509_V_ERR_UNABLE_TO_GET_CRL', 'unable to get certificate CRL'),
    4: ('X509_V_ERR_UNABLE_TO_DECRYPT_CERT_SIGNATURE', "unable to decrypt certificate's signature"),
    5: ('X509_V_ERR_UNABLE_TO_DECRYPT_CRL_SIGNATURE', "unable to decrypt CRL's signature"),
    6: ('X509_V_ERR_UNABLE_TO_DECODE_ISSUER_PUBLIC_KEY', 'unable to decode issuer public key'),
    7: ('X509_V_ERR_CERT_SIGNATURE_FAILURE', 'certificate signature failure'),
    8: ('X509_V_ERR_CRL_SIGNATURE_FAILURE', 'CRL signature failure'),
    9: ('X509_V_ERR_CERT_NOT_YET_VALID', 'certificate is not yet valid'),
    10: ('X509_V_ERR_CERT_HAS_EXPIRED', 'certificate has expired'),
    11: ('X509_V_ERR_CRL_NOT_YET_VALID', 'CRL is not yet valid'),
    12: ('X509_V_ERR_CRL_HAS_EXPIRED', 'CRL has expired'),
    13: ('X509_V_ERR_ERROR_IN_CERT_NOT_BEFORE_FIELD', "format error in certificate's notBefore field"),
    14: ('X509_V_ERR_ERROR_IN_CERT_NOT_AFTER_FIELD', "format error in certificate's notAfter field"),
    15: ('X509_V_ERR_ERROR_IN_CRL_LAST_UPDATE_FIELD', "format error in CRL's lastUpdate field"),
    16: ('X509_V_ERR_ERROR_IN_CRL_NEXT_UPDATE_FIELD', "format error in CRL's nextUpdate field"),
    17: ('X509_V_ERR_OUT_OF_MEM', 'out of memory'),
    18: ('X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT', 'self-signed certificate'),
    19: ('X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN', 'self-signed certificate in certificate chain'),
    20: ('X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY', 'unable to get local issuer certificate'),
    21: ('X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE', 'unable to verify the first certificate'),
    22: ('X509_V_ERR_CERT_CHAIN_TOO_LONG', 'certificate chain too long'),
    23: ('X509_V_ERR_CERT_REVOKED', 'certificate revoked'),
    24: ('X509_V_ERR_NO_ISSUER_PUBLIC_KEY', "issuer certificate doesn't have a public key"),
    25: ('X509_V_ERR_PATH_LENGTH_EXCEEDED', 'path length constraint exceeded'),
    26: ('X509_V_ERR_INVALID_PURPOSE', 'unsuitable certificate purpose'),
    27: ('X509_V_ERR_CERT_UNTRUSTED', 'certificate not trusted'),
    28: ('X509_V_ERR_CERT_REJECTED', 'certificate rejected'),
    29: ('X509_V_ERR_SUBJECT_ISSUER_MISMATCH', 'subject issuer mismatch'),
    30: ('X509_V_ERR_AKID_SKID_MISMATCH', 'authority and subject key identifier mismatch'),
    31: ('X509_V_ERR_AKID_ISSUER_SERIAL_MISMATCH', 'authority and issuer serial number mismatch'),
    32: ('X509_V_ERR_KEYUSAGE_NO_CERTSIGN', 'key usage does not include certificate signing'),
    33: ('X509_V_ERR_UNABLE_TO_GET_CRL_ISSUER', 'unable to get CRL issuer certificate'),
    34: ('X509_V_ERR_UNHANDLED_CRITICAL_EXTENSION', 'unhandled critical extension'),
    35: ('X509_V_ERR_KEYUSAGE_NO_CRL_SIGN', 'key usage does not include CRL signing'),
    36: ('X509_V_ERR_UNHANDLED_CRITICAL_CRL_EXTENSION', 'unhandled critical CRL extension'),
    37: ('X509_V_ERR_INVALID_NON_CA', 'invalid non-CA certificate (has CA markings)'),
    38: ('X509_V_ERR_PROXY_PATH_LENGTH_EXCEEDED', 'proxy path length constraint exceeded'),
    39: ('X509_V_ERR_KEYUSAGE_NO_DIGITAL_SIGNATURE', 'key usage does not include digital signature'),
    40: ('X509_V_ERR_PROXY_CERTIFICATES_NOT_ALLOWED', 'proxy certificates not allowed, please set the appropriate flag'),
    41: ('X509_V_ERR_INVALID_EXTENSION', 'invalid or inconsistent certificate extension'),
    42: ('X509_V_ERR_INVALID_POLICY_EXTENSION', 'invalid or inconsistent certificate policy extension'),
    43: ('X509_V_ERR_NO_EXPLICIT_POLICY', 'no explicit policy'),
    44: ('X509_V_ERR_DIFFERENT_CRL_SCOPE', 'different CRL scope'),
    45: ('X509_V_ERR_UNSUPPORTED_EXTENSION_FEATURE', 'unsupported extension feature'),
    46: ('X509_V_ERR_UNNESTED_RESOURCE', "RFC 3779 resource not subset of parent's resources"),
    47: ('X509_V_ERR_PERMITTED_VIOLATION', 'permitted subtree violation'),
    48: ('X509_V_ERR_EXCLUDED_VIOLATION', 'excluded subtree violation'),
    49: ('X509_V_ERR_SUBTREE_MINMAX', 'name constraints minimum and maximum not supported'),
    50: ('X509_V_ERR_APPLICATION_VERIFICATION', 'application verification failure'),
    51: ('X509_V_ERR_UNSUPPORTED_CONSTRAINT_TYPE', 'unsupported name constraint type'),
    52: ('X509_V_ERR_UNSUPPORTED_CONSTRAINT_SYNTAX', 'unsupported or invalid name constraint syntax'),
    53: ('X509_V_ERR_UNSUPPORTED_NAME_SYNTAX', 'unsupported or invalid name syntax'),
    54: ('X509_V_ERR_CRL_PATH_VALIDATION_ERROR', 'CRL path validation error'),
    55: ('X509_V_ERR_PATH_LOOP', 'path loop'),
    56: ('X509_V_ERR_SUITE_B_INVALID_VERSION', 'Suite B: certificate version invalid'),
    57: ('X509_V_ERR_SUITE_B_INVALID_ALGORITHM', 'Suite B: invalid public key algorithm'),
    58: ('X509_V_ERR_SUITE_B_INVALID_CURVE', 'Suite B: invalid ECC curve'),
    59: ('X509_V_ERR_SUITE_B_INVALID_SIGNATURE_ALGORITHM', 'Suite B: invalid signature algorithm'),
    60: ('X509_V_ERR_SUITE_B_LOS_NOT_ALLOWED', 'Suite B: curve not allowed for this LOS'),
    61: ('X509_V_ERR_SUITE_B_CANNOT_SIGN_P_384_WITH_P_256', 'Suite B: cannot sign P-384 with P-256'),
    62: ('X509_V_ERR_HOSTNAME_MISMATCH', 'hostname mismatch'),
    63: ('X509_V_ERR_EMAIL_MISMATCH', 'email address mismatch'),
    64: ('X509_V_ERR_IP_ADDRESS_MISMATCH', 'IP address mismatch'),
    65: ('X509_V_ERR_DANE_NO_MATCH', 'no matching DANE TLSA records'),
    66: ('X509_V_ERR_EE_KEY_TOO_SMALL', 'EE certificate key too weak'),
    67: ('X509_V_ERR_CA_KEY_TOO_SMALL', 'CA certificate key too weak'),
    68: ('X509_V_ERR_CA_MD_TOO_WEAK', 'CA signature digest algorithm too weak'),
    69: ('X509_V_ERR_INVALID_CALL', 'invalid certificate verification context'),
    70: ('X509_V_ERR_STORE_LOOKUP', 'issuer certificate lookup error'),
    71: ('X509_V_ERR_NO_VALID_SCTS', 'Certificate Transparency required, but no valid SCTs found'),
    72: ('X509_V_ERR_PROXY_SUBJECT_NAME_VIOLATION', 'proxy subject name violation'),
    73: ('X509_V_ERR_OCSP_VERIFY_NEEDED', 'OCSP verification needed'),
    74: ('X509_V_ERR_OCSP_VERIFY_FAILED', 'OCSP verification failed'),
    75: ('X509_V_ERR_OCSP_CERT_UNKNOWN', 'OCSP unknown cert'),
    76: ('X509_V_ERR_UNSUPPORTED_SIGNATURE_ALGORITHM', 'Cannot find certificate signature algorithm'),
    77: ('X509_V_ERR_SIGNATURE_ALGORITHM_MISMATCH', 'subject signature algorithm and issuer public key algorithm mismatch'),
    78: ('X509_V_ERR_SIGNATURE_ALGORITHM_INCONSISTENCY', 'cert info signature and signature algorithm mismatch'),
    79: ('X509_V_ERR_INVALID_CA', 'invalid CA certificate'),
    80: ('X509_V_ERR_PATHLEN_INVALID_FOR_NON_CA', 'Path length invalid for non-CA cert'),
    81: ('X509_V_ERR_PATHLEN_WITHOUT_KU_KEY_CERT_SIGN', 'Path length given without key usage keyCertSign'),
    82: ('X509_V_ERR_KU_KEY_CERT_SIGN_INVALID_FOR_NON_CA', 'Key usage keyCertSign invalid for non-CA cert'),
    83: ('X509_V_ERR_ISSUER_NAME_EMPTY', 'Issuer name empty'),
    84: ('X509_V_ERR_SUBJECT_NAME_EMPTY', 'Subject name empty'),
    85: ('X509_V_ERR_MISSING_AUTHORITY_KEY_IDENTIFIER', 'Missing Authority Key Identifier'),
    86: ('X509_V_ERR_MISSING_SUBJECT_KEY_IDENTIFIER', 'Missing Subject Key Identifier'),
    87: ('X509_V_ERR_EMPTY_SUBJECT_ALT_NAME', 'Empty Subject Alternative Name extension'),
    88: ('X509_V_ERR_EMPTY_SUBJECT_SAN_NOT_CRITICAL', 'Subject empty and Subject Alt Name extension not critical'),
    89: ('X509_V_ERR_CA_BCONS_NOT_CRITICAL', 'Basic Constraints of CA cert not marked critical'),
    90: ('X509_V_ERR_AUTHORITY_KEY_IDENTIFIER_CRITICAL', 'Authority Key Identifier marked critical'),
    91: ('X509_V_ERR_SUBJECT_KEY_IDENTIFIER_CRITICAL', 'Subject Key Identifier marked critical'),
    92: ('X509_V_ERR_CA_CERT_MISSING_KEY_USAGE', 'CA cert does not include key usage extension'),
    93: ('X509_V_ERR_EXTENSIONS_REQUIRE_VERSION_3', 'Using cert extension requires at least X509v3'),
    94: ('X509_V_ERR_EC_KEY_EXPLICIT_PARAMS', 'Certificate public key has explicit ECC parameters'),
}

#: SSL_R_* reason (lib 20, below SSL_AD_REASON_OFFSET) -> OpenSSL's error string, OpenSSL 3.0
SSL_REASONS: Mapping[int, str] = {
    100: 'app data in handshake', 101: 'no suitable key share', 102: 'bad dh value',
    103: 'bad change cipher spec', 104: 'inconsistent extms', 105: 'bad hello request',
    106: 'bad data returned by callback', 107: 'bad decompression', 108: 'bad key share',
    109: 'cannot change cipher', 110: 'bad extension', 111: 'bad digest length',
    112: 'missing sigalgs extension', 113: 'invalid configuration name', 114: 'bad psk identity',
    115: 'bad packet length', 116: 'bad protocol version number', 117: 'ssl command section empty',
    118: 'no suitable signature algorithm', 119: 'bad rsa encrypt', 120: 'invalid key update type',
    121: 'still in init', 122: 'bad key update', 123: 'bad signature', 124: 'bad ssl filetype',
    125: 'ssl command section not found', 126: 'ssl section empty', 127: 'bad write retry',
    128: 'bio not set', 129: 'block cipher pad is wrong', 130: 'bn lib',
    131: 'ca dn length mismatch', 132: 'too many key updates', 133: 'ccs received early',
    134: 'certificate verify failed', 135: 'cert length mismatch', 136: 'ssl section not found',
    137: 'cipher code wrong length', 139: 'unknown command', 140: 'compressed length too long',
    141: 'compression failure', 142: 'compression library error', 144: 'connection type not set',
    145: 'data between ccs and finished', 146: 'data length too long', 147: 'decryption failed',
    148: 'dh public value length is wrong', 149: 'digest check failed',
    150: 'encrypted length too long', 151: 'error in received cipher list',
    152: 'excessive message size', 153: 'extra data in message', 154: 'got a fin before a ccs',
    155: 'https proxy request', 156: 'http request', 157: 'tls invalid ecpointformat list',
    158: 'at least (D)TLS 1.2 needed in Suite B mode', 159: 'length mismatch',
    160: 'length too short', 161: 'library has no ciphers', 162: 'illegal point compression',
    163: 'ext length mismatch', 164: 'too much early data', 165: 'missing dsa signing cert',
    166: 'version too high', 167: 'context not dane enabled', 168: 'missing rsa certificate',
    169: 'missing rsa encrypting cert', 170: 'missing rsa signing cert', 171: 'missing tmp dh key',
    172: 'dane already enabled', 173: 'dane cannot override mtype full',
    174: 'invalid max early data', 175: 'dane not enabled', 176: 'no certificates returned',
    177: 'no certificate assigned', 178: 'unexpected end of early data', 179: 'no certificate set',
    180: 'dane tlsa bad certificate', 181: 'no ciphers available', 182: 'not on record boundary',
    183: 'no ciphers specified', 184: 'dane tlsa bad certificate usage', 185: 'no cipher match',
    186: 'bad cipher', 187: 'no compression specified', 188: 'no method specified',
    189: 'dane tlsa bad data length', 190: 'no private key assigned',
    191: 'no protocols available', 192: 'dane tlsa bad digest length', 193: 'no shared cipher',
    194: 'exceeds max fragment size', 195: 'null ssl ctx', 196: 'null ssl method passed',
    197: 'old session cipher not returned', 198: 'packet length too long',
    199: 'peer did not return a certificate', 200: 'dane tlsa bad matching type',
    201: 'dane tlsa bad public key', 202: 'dane tlsa bad selector', 203: 'dane tlsa null data',
    204: 'error setting tlsa base domain', 205: 'invalid alert',
    206: 'custom ext handler already installed', 207: 'protocol is shutdown',
    208: 'sct verification failed', 209: 'missing supported groups extension',
    210: 'ssl session version mismatch', 211: 'read bio not set',
    212: 'invalid ct validation type', 213: 'record length mismatch',
    214: 'no change following hrr', 215: 'required cipher missing', 216: 'no valid scts',
    217: 'unsolicited extension', 218: 'ciphersuite digest has changed', 219: 'bad psk',
    220: 'signature for non signing certificate', 221: 'missing signing cert',
    222: 'inconsistent early data alpn', 223: 'psk identity not found', 224: 'psk no client cb',
    225: 'psk no server cb', 226: 'clienthello tlsext', 227: 'parse tlsext',
    228: 'ssl ctx has no default ssl version', 229: 'ssl handshake failure',
    230: 'ssl library has no ciphers', 231: 'inconsistent early data sni',
    232: 'ssl3 ext invalid max fragment length', 233: 'bad early data', 234: 'callback failed',
    235: 'no application protocol', 236: 'bad handshake state', 237: 'overflow error',
    238: 'invalid certificate or alg', 239: 'unable to find public key parameters',
    240: 'bad packet', 241: 'insufficient security', 242: 'unable to load ssl3 md5 routines',
    243: 'unable to load ssl3 sha1 routines', 244: 'unexpected message', 245: 'unexpected record',
    246: 'unknown alert type', 247: 'unknown certificate type', 248: 'unknown cipher returned',
    249: 'unknown cipher type', 250: 'unknown key exchange type', 251: 'unknown pkey type',
    252: 'unknown protocol', 253: 'binder does not verify', 254: 'unknown ssl version',
    255: 'unknown state', 256: 'missing fatal', 257: 'unsupported compression algorithm',
    258: 'unsupported protocol', 259: 'unsupported ssl version', 260: 'invalid ccs message',
    261: 'wrong cipher returned', 262: 'unexpected ccs message', 263: 'bad hrr version',
    264: 'wrong signature length', 265: 'wrong signature size', 266: 'wrong ssl version',
    267: 'wrong version number', 268: 'x509 lib', 269: 'x509 verification setup problems',
    270: 'path too long', 271: 'bad length', 272: 'attempt to reuse session in different context',
    273: 'ssl session id context too long', 274: 'library bug', 275: 'serverhello tlsext',
    276: 'uninitialized', 277: 'session id context uninitialized',
    278: 'post handshake auth encoding err', 279: 'extension not received', 280: 'invalid command',
    281: 'decryption failed or bad record mac', 282: 'invalid context', 283: 'invalid config',
    284: 'not server', 285: 'request pending', 286: 'request sent', 287: 'no cookie callback set',
    288: 'private key mismatch', 289: 'not replacing certificate', 290: 'missing parameters',
    291: 'application data after close notify', 292: 'bad legacy version',
    293: 'mixed handshake and non handshake data', 294: 'unexpected eof while reading',
    295: 'no suitable groups', 296: 'copy parameters failed', 297: 'no suitable digest algorithm',
    298: 'record too small', 299: 'cannot get group name', 300: 'ssl3 session id too long',
    301: 'ssl session id callback failed', 302: 'ssl session id conflict',
    303: 'ssl session id has bad length', 304: 'bad ecc cert', 305: 'ocsp callback failure',
    306: 'bad ecpoint', 307: 'compression id not within private range', 308: 'cookie mismatch',
    309: 'duplicate compression id', 310: 'missing psk kex modes extension',
    311: 'missing tmp ecdh key', 312: 'read timeout expired',
    314: 'unable to find ecdh parameters', 315: 'unsupported elliptic curve',
    318: 'ecc cert not for signing', 319: 'ssl3 ext invalid servername',
    320: 'ssl3 ext invalid servername type', 324: 'no required digest',
    325: 'invalid ticket keys length', 328: 'invalid status response',
    329: 'unsupported status type',
    330: "Peer haven't sent GOST certificate, required for selected ciphersuite",
    331: 'no client cert method', 332: 'bad handshake length',
    333: 'legacy sigalg disallowed or unsupported', 334: 'dtls message too big',
    335: 'renegotiate ext too long', 336: 'renegotiation encoding err',
    337: 'renegotiation mismatch', 338: 'unsafe legacy renegotiation disabled',
    339: 'no renegotiation', 340: 'inconsistent compression', 341: 'invalid compression algorithm',
    342: 'required compression algorithm missing', 343: 'compression disabled',
    344: 'old session compression algorithm not returned', 345: 'scsv received when renegotiating',
    347: 'bad srp a length', 352: 'bad srtp mki value', 353: 'bad srtp protection profile list',
    354: 'empty srtp protection profile list', 357: 'invalid srp username',
    358: "can't find SRP server param", 359: 'no srtp profiles', 360: 'signature algorithms error',
    361: 'error with the srp params', 362: 'srtp could not allocate profiles',
    363: 'srtp protection profile list too long', 364: 'srtp unknown protection profile',
    367: 'tls illegal exporter label', 368: 'unknown digest', 369: 'use srtp not negotiated',
    370: 'wrong signature type', 371: 'bad srp parameters', 372: 'ssl negative length',
    373: 'inappropriate fallback', 374: 'ecdh required for suiteb mode',
    376: 'no shared signature algorithms', 377: 'cert cb error', 378: 'wrong curve',
    380: 'illegal Suite B digest', 381: 'missing ecdsa signing cert',
    383: 'wrong certificate type', 384: 'bad value', 385: 'invalid null cmd name',
    386: 'unknown cmd name', 388: 'invalid serverinfo data', 389: 'no pem extensions',
    390: 'bad data', 391: 'pem name bad prefix', 392: 'pem name too short',
    394: 'dh key too small', 396: 'version too low', 397: 'ca key too small',
    398: 'ca md too weak', 399: 'ee key too small', 400: 'cookie gen callback failure',
    401: 'fragmented client hello', 402: 'invalid sequence number',
    403: 'no verify cookie callback', 404: 'length too long', 405: 'failed to init async',
    406: 'pipeline failure', 407: 'shutdown while in init', 408: 'ssl session id too long',
    409: 'too many warn alerts', 410: 'no shared groups', 443: 'bad record type',
    999: 'invalid session id',
}

#: SSL_R_CERTIFICATE_VERIFY_FAILED: the verification failed and the handshake ends
CERTIFICATE_VERIFY_FAILED = 134
#: SSL_R_PEER_DID_NOT_RETURN_A_CERTIFICATE: a server that requires a client certificate got none
PEER_DID_NOT_RETURN_A_CERTIFICATE = 199
NO_SHARED_CIPHER = 193
UNSUPPORTED_PROTOCOL = 258
NO_APPLICATION_PROTOCOL = 235

_AD = names.AlertDescription
# the reasons whose fatal alert OpenSSL fixes in its source (ssl/statem): reason -> (alert in
# TLS 1.3, alert in TLS <= 1.2)
_ALERT_OF_REASON: Mapping[int, tuple[int, int]] = {
    PEER_DID_NOT_RETURN_A_CERTIFICATE: (_AD.certificate_required, _AD.handshake_failure),
    NO_SHARED_CIPHER: (_AD.handshake_failure, _AD.handshake_failure),
    UNSUPPORTED_PROTOCOL: (_AD.protocol_version, _AD.protocol_version),
    NO_APPLICATION_PROTOCOL: (_AD.no_application_protocol, _AD.no_application_protocol),
}
#: OpenSSL's ssl_x509err2alert (ssl/statem/statem_lib.c): the alert a failed verification sends;
#: any other verify error sends certificate_unknown
_X509_ALERT: Mapping[int, int] = {
    50: _AD.handshake_failure, 67: _AD.bad_certificate, 94: _AD.bad_certificate,
    68: _AD.bad_certificate, 22: _AD.unknown_ca, 10: _AD.certificate_expired,
    9: _AD.bad_certificate, 28: _AD.bad_certificate, 23: _AD.certificate_revoked,
    7: _AD.decrypt_error, 27: _AD.bad_certificate, 12: _AD.certificate_expired,
    11: _AD.bad_certificate, 8: _AD.decrypt_error, 65: _AD.bad_certificate,
    18: _AD.unknown_ca, 66: _AD.bad_certificate, 63: _AD.bad_certificate,
    14: _AD.bad_certificate, 13: _AD.bad_certificate, 15: _AD.bad_certificate,
    16: _AD.bad_certificate, 62: _AD.bad_certificate, 79: _AD.unknown_ca,
    69: _AD.internal_error, 26: _AD.unsupported_certificate, 64: _AD.bad_certificate,
    17: _AD.internal_error, 25: _AD.unknown_ca, 19: _AD.unknown_ca, 70: _AD.internal_error,
    6: _AD.bad_certificate, 4: _AD.bad_certificate, 5: _AD.bad_certificate,
    3: _AD.unknown_ca, 33: _AD.unknown_ca, 2: _AD.unknown_ca, 20: _AD.unknown_ca,
    21: _AD.unknown_ca, 1: _AD.internal_error,
}
del _AD


def x509_error_name(code: int) -> str:
    hit = X509_ERRORS.get(code)
    return hit[0] if hit else "X509_V_ERR_%d" % code


def x509_error_text(code: int) -> str:
    hit = X509_ERRORS.get(code)
    return hit[1] if hit else "verify error %d" % code


def ssl_reason_text(reason: int) -> str:
    """OpenSSL's text for an SSL error reason (a received alert: "received fatal <alert>")."""
    a = alert_received(reason)
    if a is not None:
        return "received fatal %s" % names.alert_description_name(a)
    return SSL_REASONS.get(reason) or "SSL reason %d" % reason


def alert_received(reason: int) -> int | None:
    """The alert description a reason reports as received, if it is one."""
    if SSL_AD_REASON_OFFSET < reason <= SSL_AD_REASON_OFFSET + 255:
        return reason - SSL_AD_REASON_OFFSET
    return None


def alert_of_verify_error(code: int | None) -> int:
    """The alert OpenSSL sends when a verification fails with ``code``."""
    return int(_X509_ALERT.get(code, names.AlertDescription.certificate_unknown)
               if isinstance(code, int) else names.AlertDescription.certificate_unknown)


def alerts_sent(endpoint: Mapping[str, Any], tls13: bool) -> list[int]:
    """The fatal alert an endpoint sent, as far as its errors say (OpenSSL fixes the alert of a
    few reasons; a failed verification sends what ssl_x509err2alert makes of the verify error).
    Derived, not read: OpenSSL exports no function that sees the alert it sends."""
    for r in endpoint.get("ssl_errors") or ():
        if r == CERTIFICATE_VERIFY_FAILED:
            return [alert_of_verify_error(endpoint.get("verify_error"))]
        if r in _ALERT_OF_REASON:
            return [int(_ALERT_OF_REASON[r][0 if tls13 else 1])]
    return []


def make_endpoint(side: int, pid: int, comm: str, library: str, verify_error: int | None,
                  verify_depth: int | None, ssl_errors: list[int]) -> dict:
    """One endpoint's raw hint, bounded (what the sensor writes)."""
    folded: list[int] = []
    for r in ssl_errors:
        if not folded or folded[-1] != r:
            folded.append(int(r))
    return {"side": int(side), "pid": int(pid), "comm": str(comm)[:MAX_COMM],
            "library": str(library)[:MAX_LIBRARY],
            "verify_error": None if verify_error is None else int(verify_error),
            "verify_depth": None if verify_depth is None else int(verify_depth),
            "ssl_errors": folded[:MAX_ERRORS]}


# -- the shape check (what proto.summary.decode_summary accepts) ----------------------------------

_KEYS = frozenset(ENDPOINT_KEYS)


def _int(v: object, lo: int, hi: int) -> bool:
    return type(v) is int and lo <= v <= hi


def _endpoint_ok(e: object) -> bool:
    if type(e) is not dict or len(e) != len(ENDPOINT_KEYS) or set(e) != _KEYS:
        return False
    errs = e["ssl_errors"]
    return (_int(e["side"], 0, 1) and _int(e["pid"], 0, 0x7FFFFFFF)
            and type(e["comm"]) is str and len(e["comm"]) <= MAX_COMM
            and type(e["library"]) is str and len(e["library"]) <= MAX_LIBRARY
            and (e["verify_error"] is None or _int(e["verify_error"], 0, 0xFFFF))
            and (e["verify_depth"] is None or _int(e["verify_depth"], 0, 0xFFFF))
            and type(errs) is list and len(errs) <= MAX_ERRORS
            and all(_int(r, 0, 0xFFFFFF) for r in errs))


def check_hints(v: object) -> bool:
    """The raw field's shape: this version exactly; another version only as a small map with
    an int ``"v"`` (kept, and ignored by readers)."""
    if type(v) is not dict or type(v.get("v")) is not int or len(v) > 8:
        return False
    if v["v"] != HINTS_VERSION:
        return True
    eps = v.get("endpoints")
    return (set(v) == {"v", "endpoints"} and type(eps) is list and 0 < len(eps) <= MAX_ENDPOINTS
            and all(_endpoint_ok(e) for e in eps))


# -- JSON ---------------------------------------------------------------------------------------

_SIDE = ("client", "server")


def hints_to_json(v: Mapping[str, Any], version: int | None) -> dict:
    """The JSON form: codes with their OpenSSL names and texts, the alerts received and (derived)
    sent.  ``version``: the summary's negotiated version code (the alert some reasons send
    depends on it).  A version of the field this reader does not know renders as
    ``{"version": N}`` only."""
    if v.get("v") != HINTS_VERSION:
        return {"version": v.get("v")}
    tls13 = version is not None and names.is_tls13(version)
    out = []
    for e in v["endpoints"]:
        ve = e["verify_error"]
        errs = e["ssl_errors"]
        received = [a for a in map(alert_received, errs) if a is not None]
        out.append({
            "side": _SIDE[e["side"]],
            "pid": e["pid"],
            "comm": e["comm"],
            "library": e["library"],
            "verify": None if ve is None else {
                "error": x509_error_name(ve), "code": ve, "text": x509_error_text(ve),
                "depth": e["verify_depth"]},
            "errors": [{"reason": r, "text": ssl_reason_text(r)} for r in errs],
            "alerts_received": [names.alert_description_name(a) for a in received],
            "alerts_sent": [names.alert_description_name(a) for a in alerts_sent(e, tls13)],
        })
    return {"version": HINTS_VERSION, "endpoints": out}
