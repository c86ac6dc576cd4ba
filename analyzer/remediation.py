"""Fix texts per cause x direction x rejecting side, after the vendor's troubleshooting page.

Northbound: client app -> Router (virtual host, keystore, truststore, protocol/cipher config).
Southbound: Message Processor (JSSE) -> backend (TargetEndpoint/TargetServer ``<SSLInfo>``: Protocols,
Ciphers, TrustStore, KeyStore/KeyAlias; ``jsse.enableSNIExtension``; JCE policy).

Templates take the concrete values from the evidence (``{sni}``, ``{offered}``, ``{not_after}``...); a value
the evidence lacks renders as ``?``.
"""

from __future__ import annotations

import functools
import string
from typing import Mapping, Sequence, Union

from .causes import (CAUSES, CERTIFICATE_REJECTED, CIPHER_MISMATCH, CLIENT_CERTIFICATE_MISSING, ENCRYPTED_FAILURE,
                     EXPIRED_CERTIFICATE, EXPIRING_CERTIFICATE, HOSTNAME_MISMATCH, INCOMPLETE_CHAIN,
                     NOT_YET_VALID_CERTIFICATE, PROTOCOL_MISMATCH, SNI_REQUIRED, SNI_UNRECOGNIZED, UNKNOWN,
                     UNKNOWN_CERTIFICATE, Cause)

N, S = "northbound", "southbound"

_MP_PROPS = ("on every Message Processor add `conf_system_jsse.enableSNIExtension=true` to "
             "/opt/apigee/customer/application/message-processor.properties (owner apigee:apigee), then run "
             "`/opt/apigee/apigee-service/bin/apigee-service message-processor restart`")
_VERIFY = "check it with `openssl verify -CAfile root.pem -untrusted intermediate.pem leaf.pem`"
_SSLINFO = "the TargetEndpoint `<HTTPTargetConnection><SSLInfo>` (or the TargetServer's SSLInfo via the management API)"

#: (cause, direction, rejected_by) -> template; lookups fall back to (cause, direction, None), then
#: (cause, None, rejected_by), then (cause, None, None), which every cause has (checked at import).
TEMPLATES: Mapping[tuple[Cause, str | None, str | None], str] = {
    # -- versions --------------------------------------------------------------------------------------
    (PROTOCOL_MISMATCH, S, "server"): (
        "The backend {server} refuses the MP's versions[ ({offered})][; it chose {server_versions} when it "
        "worked]. Upgrade "
        "the backend to TLSv1.2 (recommended), or pin the MP to a version the backend accepts in " + _SSLINFO +
        ": `<SSLInfo><Enabled>true</Enabled><Protocols><Protocol>{suggest_version}</Protocol></Protocols></SSLInfo>`."),
    (PROTOCOL_MISMATCH, S, "client"): (
        "The backend {server} chose [{version}|an old version], which the MP refuses. Upgrade the backend to "
        "TLSv1.2, or allow it in " + _SSLINFO + " with `<Protocols><Protocol>[{version}|VERSION]</Protocol>"
        "</Protocols>` (and check the JVM's jdk.tls.disabledAlgorithms does not disable it)."),
    (PROTOCOL_MISMATCH, N, "server"): (
        "The Router's virtual host refuses the client's versions[ ({offered})][; it chose {server_versions} when it "
        "worked]. Upgrade the client app to TLSv1.2 or later; only if the old version must be served, enable it in the "
        "virtual host's SSL protocol settings on the Router."),
    (PROTOCOL_MISMATCH, N, "client"): (
        "The Router chose [{version}|a version], which the client app refuses: enable TLSv1.2/TLSv1.3 in the "
        "virtual host's SSL "
        "protocol settings on the Router."),
    (PROTOCOL_MISMATCH, None, None): (
        "Client and server share no protocol version[ (client offered {offered}[; server chose {server_versions} "
        "when it worked][, {version} here])]. Upgrade the older side; on the gateway: Router virtual host protocols "
        "(northbound) or `<SSLInfo><Protocols><Protocol>` of the TargetEndpoint/TargetServer (southbound)."),
    # -- cipher suites ---------------------------------------------------------------------------------
    (CIPHER_MISMATCH, S, None): (
        "The backend {server} accepts none of the[ {n_offered}] suites the MP offered[ (it chose {server_suites} when "
        "it worked)]. Make the MP offer one it has: list it in " + _SSLINFO + " `<Ciphers><Cipher>NAME</Cipher>`, or "
        "install the JCE unlimited-strength policy in the MP's Java (Java 8 before 8u161) so AES-256 suites are "
        "offered; or enable one of the MP's suites on the backend."),
    (CIPHER_MISMATCH, N, None): (
        "The Router's virtual host accepts none of the[ {n_offered}] suites the client offered[ (it chose "
        "{server_suites} when it worked)]. Make the client app offer a current suite (e.g. "
        "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256), or add one of the client's suites to the virtual host's cipher list "
        "on the Router (ssl_ciphers in /opt/nginx/conf.d/0-default.conf)."),
    (CIPHER_MISMATCH, None, None): (
        "No common cipher suite (or key-exchange group)[: the server chose {server_suites} when it worked][; the "
        "client offered {n_offered} suites]. Align the lists: Router virtual host ciphers (northbound) or "
        "`<SSLInfo><Ciphers>` "
        "and the JCE unlimited-strength policy on the MP (southbound)."),
    # -- SNI -------------------------------------------------------------------------------------------
    (SNI_REQUIRED, S, None): (
        "The backend {server} needs SNI and the MP sent no server_name: " + _MP_PROPS + ". Also make sure the "
        "TargetEndpoint URL / TargetServer host is a host name ({target}), not an IP address: JSSE sends no SNI "
        "for IP literals. Check with `openssl s_client -connect {server}` with and without `-servername`."),
    (SNI_REQUIRED, N, None): (
        "The Router needs SNI to pick the virtual host and the client sent no server_name: have the client use the "
        "host name in the URL (not the IP) and enable SNI in its TLS library, or give the Router a default virtual "
        "host/certificate for clients without SNI."),
    (SNI_REQUIRED, None, None): (
        "The server needs SNI and the client sent no server_name. Southbound (MP client): " + _MP_PROPS +
        ". Northbound: make the client send server_name (host name in the URL, SNI enabled)."),
    (SNI_UNRECOGNIZED, S, "client"): (
        "The backend {server} does not know the name [{sni}|the MP sent] and sent unrecognized_name; the MP's JSSE "
        "treats that warning as fatal. Configure the backend with a certificate/virtual host for [{sni}|that name] "
        "(or stop it sending the warning), or make the TargetEndpoint use a name the backend serves. Last resort: "
        "`conf_system_jsse.enableSNIExtension=false` on the MP (turns SNI off for every target)."),
    (SNI_UNRECOGNIZED, N, None): (
        "The Router has no virtual host for [{sni}|the name the client sent]: add [{sni}|that name] to the virtual "
        "host's host aliases (with a certificate "
        "covering it), or have the client use a name the Router serves."),
    (SNI_UNRECOGNIZED, None, None): (
        "The server does not recognise the name [{sni}|the client sent]: configure it to serve [{sni}|that name] "
        "(virtual host / host alias with a "
        "matching certificate) or have the client use a name the server knows."),
    # -- certificates the client rejected (server's certificate) --------------------------------------
    (HOSTNAME_MISMATCH, N, "client"): (
        "The Router's certificate[ ({subject}[; names {cert_names}])] does not cover [{hostname}|the name asked "
        "for]. Get a certificate whose SAN includes [{hostname}|that name] (or a wildcard for its domain) and "
        "upload it with the full chain to the virtual "
        "host's keystore."),
    (HOSTNAME_MISMATCH, S, "client"): (
        "The backend's certificate[ ({subject}[; names {cert_names}])] does not cover [{hostname}|the name asked "
        "for]. Fix the backend certificate[ (SAN {hostname})], or point the TargetEndpoint URL / TargetServer host "
        "at a name the "
        "certificate has."),
    (HOSTNAME_MISMATCH, None, None): (
        "The server certificate[ ({subject}[; names {cert_names}])] does not cover [{hostname}|the name asked "
        "for]: issue one whose SAN includes [{hostname}|that name] (or a wildcard) and install it with its full "
        "chain (Router keystore northbound; backend "
        "southbound), or use a name the certificate has."),
    (INCOMPLETE_CHAIN, N, "client"): (
        "The Router sends [{subject}|its certificate] without its issuer[ {missing_issuer}]: upload the complete "
        "chain (leaf + "
        "intermediates, in order) to the virtual host's keystore; " + _VERIFY + "."),
    (INCOMPLETE_CHAIN, S, "client"): (
        "The backend {server} sends [{subject}|its certificate] without its issuer[ {missing_issuer}] (or a mismatched "
        "intermediate): "
        "fix the chain on the backend; meanwhile the intermediate can be added to the MP truststore referenced by "
        "`<SSLInfo><TrustStore>`. " + _VERIFY[0].upper() + _VERIFY[1:] + "."),
    (INCOMPLETE_CHAIN, N, "server"): (
        "The client app sends its certificate[ {subject}] without the intermediate[ {missing_issuer}]: configure the "
        "client with its full chain, or add the intermediate to the Router virtual host's truststore."),
    (INCOMPLETE_CHAIN, S, "server"): (
        "The MP sends its client certificate[ {subject}] without the intermediate[ {missing_issuer}]: upload the full "
        "chain to the keystore/alias referenced by `<SSLInfo><KeyStore>`/`<KeyAlias>`; " + _VERIFY + "."),
    (INCOMPLETE_CHAIN, None, None): (
        "The certificate[ {subject}] is sent without its issuer[ {missing_issuer}] (or with a mismatched "
        "intermediate): "
        "install the complete chain where the certificate lives; " + _VERIFY + "."),
    (EXPIRED_CERTIFICATE, N, "client"): (
        "The Router's certificate[ {subject}] [expired {not_after}|has expired]: upload a renewed certificate with "
        "its full chain to "
        "the virtual host's keystore."),
    (EXPIRED_CERTIFICATE, S, "client"): (
        "The backend's certificate[ {subject}] [expired {not_after}|has expired]: renew it on the backend {server} "
        "(and update the "
        "MP truststore if it pins that certificate)."),
    (EXPIRED_CERTIFICATE, N, "server"): (
        "The client app's certificate[ {subject}] [expired {not_after}|has expired]: the client must renew it (the "
        "Router rejects "
        "it)."),
    (EXPIRED_CERTIFICATE, S, "server"): (
        "The MP's client certificate[ {subject}] [expired {not_after}|has expired]: upload a renewed certificate "
        "and chain to the "
        "keystore/alias in `<SSLInfo><KeyStore>`/`<KeyAlias>`."),
    (EXPIRED_CERTIFICATE, None, None): (
        "The certificate[ {subject}] [expired {not_after}|has expired]: renew it and install it with its full "
        "chain where it lives "
        "(keystore of the side that sends it)."),
    (NOT_YET_VALID_CERTIFICATE, None, None): (
        "The certificate[ {subject}] [is not valid before {not_before}|is not yet valid]: check the clocks (NTP) "
        "of both sides, or "
        "install a certificate that is already valid (keystore of the side that sends it)."),
    (UNKNOWN_CERTIFICATE, N, "client"): (
        "The client app does not trust the Router's certificate[ (issuer {issuer})]: use a certificate from a CA the "
        "clients trust and upload it with its full chain to the virtual host's keystore, or add the root to the "
        "clients' truststore."),
    (UNKNOWN_CERTIFICATE, S, "client"): (
        "The MP does not trust the backend's certificate[ (issuer {issuer})]: upload the backend's root (and "
        "intermediate) certificate to the truststore referenced by `<SSLInfo><TrustStore>` of the "
        "TargetEndpoint/TargetServer."),
    (UNKNOWN_CERTIFICATE, N, "server"): (
        "The Router does not trust the client's certificate[ (issuer {issuer})]: upload the client's CA to the "
        "virtual host's truststore."),
    (UNKNOWN_CERTIFICATE, S, "server"): (
        "The backend does not trust the MP's client certificate[ (issuer {issuer})]: install that CA on the backend, "
        "or use a client certificate the backend trusts in `<SSLInfo><KeyStore>`/`<KeyAlias>`."),
    (UNKNOWN_CERTIFICATE, None, None): (
        "The {rejected_by} does not trust the peer's certificate[ (issuer {issuer})]: add the issuing root to the "
        "rejecting side's truststore (Router virtual host northbound; `<SSLInfo><TrustStore>` southbound), or use a "
        "certificate from a trusted CA."),
    (CERTIFICATE_REJECTED, None, None): (
        "The {rejected_by} rejected the peer's certificate[ ({subject})] without saying why: compare it with the "
        "rejecting side's truststore (Router virtual host northbound; `<SSLInfo><TrustStore>` southbound), check the "
        "name and the chain (" + _VERIFY + "), or run `tlsdiag probe {server}[ --servername {sni}]`."),
    (CLIENT_CERTIFICATE_MISSING, N, None): (
        "The Router's virtual host requires a client certificate and the client app sent none: configure the client "
        "with its certificate and key (issued by a CA in the virtual host's truststore), or disable client "
        "authentication on the virtual host if it is not intended."),
    (CLIENT_CERTIFICATE_MISSING, S, None): (
        "The backend {server} requires a client certificate and the MP sent none: set `<SSLInfo><ClientAuthEnabled>"
        "true</ClientAuthEnabled><KeyStore>...</KeyStore><KeyAlias>...</KeyAlias>` in the TargetEndpoint/"
        "TargetServer, with a key and full chain issued by a CA the backend accepts."),
    (CLIENT_CERTIFICATE_MISSING, None, None): (
        "The server requires a client certificate and the client sent none: give the client a certificate from a CA "
        "the server accepts (southbound: `<SSLInfo><ClientAuthEnabled>`, `<KeyStore>`, `<KeyAlias>`)."),
    (ENCRYPTED_FAILURE, N, "server"): (
        "The Router rejected the client app's certificate (TLS 1.3 encrypts its alert, so the wire does not say "
        "why): check the client's certificate -- `openssl x509 -noout -subject -issuer -dates -in client.pem` -- "
        "against the virtual host's truststore (expired, or issued by a CA the virtual host lacks) and the Router's "
        "log for the alert it sent."),
    (ENCRYPTED_FAILURE, S, "server"): (
        "The backend {server} rejected the MP's client certificate (TLS 1.3 encrypts its alert, so the wire does not "
        "say why): check the certificate of the keystore/alias in `<SSLInfo><KeyStore>`/`<KeyAlias>` (expired, "
        "or issued by a CA the backend does not trust) and the backend's log for the alert it sent."),
    (ENCRYPTED_FAILURE, None, "client"): (
        "TLS 1.3 hides the reason the client rejected the server's certificate. Run `tlsdiag probe {server}[ "
        "--servername {sni}]` (add --truststore with the client's truststore) to fetch and validate the chain the "
        "server serves, then apply the matching certificate fix."),
    (ENCRYPTED_FAILURE, None, None): (
        "TLS 1.3 hides the reason. Run `tlsdiag probe {server}[ --servername {sni}]` (add --truststore with the "
        "client's truststore) to fetch and validate the chain the server serves; then apply the matching "
        "certificate fix. If the server rejected the client (client certificate), check the server's logs."),
    (EXPIRING_CERTIFICATE, None, None): (
        "The certificate[ {subject}] expires [{not_after}|soon]: renew it and install it with its full chain "
        "before then "
        "(Router virtual host keystore northbound; backend or MP keystore southbound)."),
    (UNKNOWN, None, None): (
        "No rule explains this failure: run `tlsdiag probe {server}[ --servername {sni}]` and check both sides' logs."),
}


#: Fixes for one way a cause comes about, where the cause's own text would point elsewhere: (cause, variant,
#: direction) -> template (falling back to (cause, variant, None)); a rule's finding names its variant.
VARIANT_TEMPLATES: Mapping[tuple[Cause, str, str | None], str] = {
    (CIPHER_MISMATCH, "groups", N): (
        "The Router's virtual host accepts none of the key-exchange groups the client offered[ ({client_groups})]"
        "[; it chose {server_groups} when it worked]. Make the client app offer a group the Router has (x25519 and "
        "secp256r1 are in every current TLS stack), or add one of the client's groups to the virtual host's curve "
        "list on the Router (nginx ssl_ecdh_curve)."),
    (CIPHER_MISMATCH, "groups", S): (
        "The backend {server} accepts none of the key-exchange groups the MP offered[ ({client_groups})][; it chose "
        "{server_groups} when it worked]. Make the MP's Java offer one the backend has (system property "
        "`jdk.tls.namedGroups` on the Message Processor, e.g. x25519,secp256r1,secp384r1), or enable one of the MP's "
        "groups on the backend."),
    (CERTIFICATE_REJECTED, "hint", None): (
        "The {rejected_by}'s OpenSSL rejected the peer's certificate[ ({subject})] with [{verify_error} "
        "({verify_text})|a verify error][ at depth {verify_depth}] (0 = the peer's own certificate, 1 its issuer...): "
        "fix that certificate, or the rejecting side's policy if the certificate is meant to pass; reproduce with "
        "`openssl verify -CAfile <the rejecting side's roots> -untrusted <intermediates> <certificate>`."),
    (CERTIFICATE_REJECTED, "unparseable", None): (
        "A certificate of this chain is not well-formed X.509 (a strict parser refuses it; this peer let it pass, "
        "another may not): look at it with `openssl x509 -inform der -text -noout` or `openssl asn1parse -inform "
        "der`, and have it reissued by its CA (a duplicated extension, a wrong version field or a malformed name "
        "are the usual faults)."),
    (CIPHER_MISMATCH, "groups", None): (
        "No common key-exchange group[: the client offered {client_groups}][; the server chose {server_groups} when "
        "it worked]. Align the groups: the Router virtual host's curve list (northbound), `jdk.tls.namedGroups` on "
        "the MP (southbound), or the peer's own group list."),
}


#: Fixes for what the active probe (``tlsdiag probe``, analyzer/probe) finds where no diagnosis template fits
#: its situation: (cause, situation) -> template, rendered like TEMPLATES.
PROBE_TEMPLATES: Mapping[tuple[Cause, str], str] = {
    (UNKNOWN, "no_version"): "check that the port speaks TLS; see the per-version answers above",
    (PROTOCOL_MISMATCH, "not_tls"): (
        "probe the port the TLS service listens on, or check which service listens on {server} (plain HTTP "
        "answers a ClientHello with an HTTP error)"),
    (UNKNOWN, "silent"): (
        "check which service listens on {server} and whether a firewall or proxy drops TLS; a TLS server answers "
        "a ClientHello at once"),
    (UNKNOWN, "no_version_no_sni"): (
        "the target is an IP address and no --servername was given, so no server_name was sent: an SNI-only "
        "server rejects every such handshake - retry with --servername NAME"),
    (PROTOCOL_MISMATCH, "only_sslv3"): (
        "upgrade the backend to TLSv1.2: SSLv3 is disabled in Java 8u31+ (jdk.tls.disabledAlgorithms) and must "
        "not be pinned"),
    (PROTOCOL_MISMATCH, "deprecated_enabled"): "disable {deprecated} on the server",
    (CIPHER_MISMATCH, "settles_on_top_version"): (
        "offer a {top} suite the server has, or drop {top} from the client's protocols"),
    (SNI_REQUIRED, "certificate_depends_on_sni"): (
        "clients must send SNI to get the right certificate (MP: jsse.enableSNIExtension=true)"),
}

_MISSING = [c.id for c in CAUSES if (c, None, None) not in TEMPLATES]
if _MISSING:  # pragma: no cover - a cause without its default fix is a programming error, never a silent fallback
    raise RuntimeError(f"analyzer.remediation: no (cause, None, None) template for {', '.join(_MISSING)}")


class _Safe(dict[str, object]):
    def __missing__(self, key: str) -> str:
        return "?"


#: a parsed template: literal text (with ``{field}`` placeholders) and optional groups, each a tuple of
#: alternatives: ``(parsed template, the fields its literal text names)`` (worked out once, with the parse)
_Node = Union[str, "tuple[tuple[tuple[_Node, ...], frozenset[str]], ...]"]


@functools.lru_cache(maxsize=512)
def _parse(template: str) -> tuple[_Node, ...]:
    """``[A]`` is dropped when a field of A is missing; ``[A|B]`` renders B instead; groups nest."""
    def group(i: int, stop: str) -> tuple[list[_Node], int]:
        out: list[_Node] = []
        lit: list[str] = []
        while i < len(template):
            ch = template[i]
            if ch in stop:
                break
            if ch == "[":
                alts: list[list[_Node]] = []
                i += 1
                while True:
                    alt, i = group(i, "|]")
                    alts.append(alt)
                    if i >= len(template) or template[i] == "]":
                        break
                    i += 1                  # past "|"
                if lit:
                    out.append("".join(lit))
                    lit = []
                out.append(tuple((tuple(a), frozenset(_fields(a))) for a in alts))
            else:
                lit.append(ch)
            i += 1
        if lit:
            out.append("".join(lit))
        return out, i
    nodes, _ = group(0, "")
    return tuple(nodes)


def _fields(nodes: Sequence[_Node]) -> list[str]:
    """The placeholders of the literal text of ``nodes`` (not of nested groups)."""
    return [f for n in nodes if isinstance(n, str) for _, f, _, _ in string.Formatter().parse(n) if f]


def _render(nodes: Sequence[_Node], vals: _Safe) -> str:
    out = []
    have = vals.keys()
    for n in nodes:
        if isinstance(n, str):
            out.append(n.format_map(vals))
            continue
        for alt, fields in n:
            if have >= fields:
                out.append(_render(alt, vals))
                break
    return "".join(out)


def render(template: str, facts: Mapping[str, object]) -> str:
    """The template with the facts filled in.  A fact the evidence lacks drops the optional segment that
    names it (``[ ({subject})]``) or picks its alternative (``[expired {not_after}|has expired]``); outside a
    segment it renders as ``?``."""
    vals = _Safe({k: v for k, v in facts.items() if v is not None and v != ""})
    return _render(_parse(template), vals)


def template_for(cause: Cause, direction: str | None, rejected_by: str | None, variant: str | None = None) -> str:
    """The most specific template for the cause; every cause has at least its ``(cause, None, None)`` one
    (a cause that is not in the registry is a KeyError, never the "unknown" text)."""
    d = direction if direction in (N, S) else None
    if variant is not None:
        for vkey in ((cause, variant, d), (cause, variant, None)):
            t = VARIANT_TEMPLATES.get(vkey)
            if t is not None:
                return t
    for key in ((cause, d, rejected_by), (cause, d, None), (cause, None, rejected_by)):
        t = TEMPLATES.get(key)
        if t is not None:
            return t
    return TEMPLATES[(cause, None, None)]


def remediation(cause: Cause, direction: str | None, rejected_by: str | None, facts: Mapping[str, object],
                variant: str | None = None) -> str:
    """The fix for this cause in this direction, filled with the evidence's values.

    With an unknown direction the northbound and southbound fixes are both given when they differ.
    """
    if direction in (N, S):
        return render(template_for(cause, direction, rejected_by, variant), facts)
    nb, sb = template_for(cause, N, rejected_by, variant), template_for(cause, S, rejected_by, variant)
    if nb == sb:
        return render(nb, facts)
    return f"If northbound (client -> Router): {render(nb, facts)} If southbound (MP -> backend): {render(sb, facts)}"


def fix_text(cause: Cause, facts: Mapping[str, object], *, direction: str | None = None,
             rejected_by: str | None = None, situation: str | None = None) -> str:
    """One fix text: the probe's ``situation`` template when given, else the cause's most specific template
    for ``direction`` and ``rejected_by`` (direction None: the one that covers both directions)."""
    if situation is not None:
        return render(PROBE_TEMPLATES[(cause, situation)], facts)
    return render(template_for(cause, direction, rejected_by), facts)
