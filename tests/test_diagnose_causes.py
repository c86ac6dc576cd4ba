"""The cause registry (analyzer/causes.py) and what hangs on it: every cause has its fix text, every
failure cause has a rule, warning causes have warning rule ids, and no module of the analyzer spells a
cause id as a bare string.  (That every failure cause comes out of a real capture is checked in
tests/test_diagnose_scenarios.py, where the captures are diagnosed.)"""

from __future__ import annotations

import ast
import string
from pathlib import Path

import pytest

from analyzer import certs, remediation, rules
from analyzer.causes import CAUSES, CAUSES_BY_ID, CIPHER_MISMATCH, FAILURE_CAUSES, UNKNOWN, Cause, cause_by_id

ANALYZER = Path(__file__).resolve().parents[1] / "analyzer"
DIRECTIONS = (remediation.N, remediation.S, None)
SIDES = ("client", "server", None)


def test_registry_is_consistent():
    assert len({c.id for c in CAUSES}) == len(CAUSES)
    assert all(CAUSES_BY_ID[c.id] is c and cause_by_id(c.id) is c for c in CAUSES)
    assert cause_by_id("no_such_cause") is None and cause_by_id(None) is None
    for c in CAUSES:
        assert c.id and c.label and c.description and str(c) == c.id, c
        assert c.failure or c.warning_rule, f"{c.id}: neither a failure cause nor a warning"
    warning_ids = [c.warning_rule for c in CAUSES if c.warning_rule]
    assert len(warning_ids) == len(set(warning_ids))
    assert all(w.startswith("TLS-WARN-") for w in warning_ids)


def test_every_cause_has_its_default_template():
    missing = [c.id for c in CAUSES if (c, None, None) not in remediation.TEMPLATES]
    assert not missing


def test_templates_only_for_registered_causes():
    assert {key[0] for key in remediation.TEMPLATES} == set(CAUSES)
    for cause, direction, side in remediation.TEMPLATES:
        assert direction in DIRECTIONS and side in SIDES


def test_probe_templates_are_for_registered_causes():
    for (cause, situation), text in remediation.PROBE_TEMPLATES.items():
        assert cause in CAUSES and situation and text
        assert remediation.fix_text(cause, {}, situation=situation)


def test_no_silent_fallback_to_the_unknown_text():
    """Every cause, direction and side gets one of its own templates; a cause that is not registered is an
    error, not the "no rule explains this failure" text."""
    unknown_text = remediation.TEMPLATES[(UNKNOWN, None, None)]
    for c in CAUSES:
        for d in DIRECTIONS:
            for side in SIDES:
                t = remediation.template_for(c, d, side)
                assert t in {v for (k, *_), v in remediation.TEMPLATES.items() if k is c}
                assert c is UNKNOWN or t != unknown_text
    stray = Cause("not_registered", True, None, "stray", "a cause nobody registered")
    with pytest.raises(KeyError):
        remediation.template_for(stray, None, None)


#: what every diagnosis has for its fix text whatever the wire showed (engine._remediation_facts)
_ALWAYS = {"server": "10.0.0.1:443", "client": "10.0.0.2:50000", "rejected_by": "client",
           "target": "the backend's host name", "suggest_version": "TLSv1.0"}


def _placeholder_left(text: str) -> bool:
    """A fact the evidence lacked rendered as ``?`` (issue 12: "The Router's certificate ? expired ?")."""
    return any(w.strip("(),.:;`'") == "?" for w in text.split()) or "()" in text or "  " in text


@pytest.mark.parametrize("key", sorted(remediation.TEMPLATES, key=lambda k: (k[0].id, str(k[1]), str(k[2]))),
                         ids=lambda k: f"{k[0].id}-{k[1]}-{k[2]}")
def test_fix_texts_read_well_without_the_optional_facts(key):
    """A TLS 1.3 certificate seen only as an alert has no subject or date, a connection without SNI no name,
    a refusal without a profile no server versions: the fix text drops those parts instead of printing ``?``,
    and keeps them when they are there."""
    text = remediation.render(remediation.TEMPLATES[key], _ALWAYS)
    assert not _placeholder_left(text), text
    full = dict(_ALWAYS, subject="CN=leaf.example", not_after="2026-11-02T19:54:42Z", not_before="2026-01-01T00:00:00Z",
                issuer="CN=CA", missing_issuer="CN=CA", cert_names="leaf.example", hostname="api.example",
                sni="api.example", offered="TLSv1.2", server_versions="TLSv1.0", version="TLSv1.0", n_offered=3,
                server_suites="TLS_AES_128_GCM_SHA256")
    text = remediation.render(remediation.TEMPLATES[key], full)
    assert not _placeholder_left(text), text
    named = {f for _, f, _, _ in string.Formatter().parse(remediation.TEMPLATES[key]) if f}
    assert all(str(full[f]) in text for f in named), (named, text)


def test_optional_segments():
    r = remediation.render
    t = "The Router's certificate[ {subject}] [expired {not_after}|has expired]: renew[ (names {names}[; {extra}])]."
    assert r(t, {}) == "The Router's certificate has expired: renew."
    assert r(t, {"subject": "CN=a", "not_after": "2026", "names": "a"}) == (
        "The Router's certificate CN=a expired 2026: renew (names a).")
    assert r(t, {"names": "a", "extra": "b"}) == "The Router's certificate has expired: renew (names a; b)."
    assert r("x {missing} y", {}) == "x ? y"        # outside a segment a missing fact still shows


def test_group_mismatch_fix_is_about_groups():
    """issue 12: a key-exchange group mismatch got the cipher-suite fix."""
    for d in (remediation.N, remediation.S, None):
        text = remediation.remediation(CIPHER_MISMATCH, d, "server",
                                       dict(_ALWAYS, client_groups="x25519, secp256r1", server_groups="secp384r1"),
                                       "groups")
        assert "group" in text and "x25519, secp256r1" in text and "secp384r1" in text and "suites" not in text
    assert {r.id for r in rules.FAILURE_RULES if r.id.endswith(("GROUP", "HRR-CLIENT-ABORT"))} == {
        "TLS-HELLO-REFUSED-PROFILE-GROUP", "TLS13-HRR-CLIENT-ABORT"}


def test_every_failure_cause_has_a_rule_and_only_those():
    assert {r.cause for r in rules.FAILURE_RULES} == set(FAILURE_CAUSES)


def test_certificate_problems_map_to_causes_that_can_warn():
    """A successful handshake with a certificate problem gets a warning with the cause's own rule id."""
    assert set(certs.PROBLEM_CAUSE) == {certs.EXPIRED, certs.NOT_YET_VALID, certs.EXPIRING_SOON,
                                        certs.HOSTNAME_MISMATCH, certs.MISSING_ISSUER, certs.ISSUER_MISMATCH,
                                        certs.SELF_SIGNED, certs.UNTRUSTED_ROOT, certs.VERIFIER_REJECTED,
                                        certs.UNPARSEABLE}
    for code, cause in certs.PROBLEM_CAUSE.items():
        assert cause in CAUSES and cause.warning_rule, (code, cause)


#: (file, line) where a cause id's spelling is something else: the certificate problem code
_ALLOWED_LINES = {("certs.py", 'HOSTNAME_MISMATCH = "hostname_mismatch"')}


def _bare_cause_strings(path: Path) -> list[str]:
    ids = {c.id for c in CAUSES} - {"unknown"}   # "unknown" is also an outcome, a direction, a name
    lines = path.read_text().splitlines()
    out = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Constant) and node.value in ids:
            line = lines[node.lineno - 1].strip()
            if (path.name, line) not in _ALLOWED_LINES:
                out.append(f"{path.name}:{node.lineno}: {line}")
    return out


def test_no_bare_cause_strings_outside_the_registry():
    found = [hit for path in sorted(ANALYZER.rglob("*.py")) if path.name != "causes.py"
             for hit in _bare_cause_strings(path)]
    assert not found, "cause ids spelled as strings (use analyzer.causes):\n" + "\n".join(found)


def test_the_scan_finds_a_bare_cause_string(tmp_path):
    """The scan above can fail: a module comparing with a cause id is reported."""
    src = tmp_path / "m.py"
    src.write_text('def f(d):\n    return d["cause"] == "cipher_mismatch"\n')
    assert _bare_cause_strings(src) == ['m.py:2: return d["cause"] == "cipher_mismatch"']
