"""pii: emails and public IPs replaced as FineWeb did; private addresses kept; counters."""

from __future__ import annotations

from stage_util import apply, counters

from curate_filters.annotation.pii import PII


def test_emails_and_public_ips_are_replaced():
    stage = PII()
    reasons, texts, _ = apply(stage, ["Write to jane.doe@mail.com or ops@corp.co.uk; server 8.8.8.8 and 192.168.1.7."])
    assert reasons == [None]
    assert texts[0] == (
        "Write to email@example.com or firstname.lastname@example.org; server 22.214.171.124 and 192.168.1.7."
    )
    assert counters(stage) == {"emails_replaced": 2, "ips_replaced": 1}


def test_text_without_pii_is_untouched():
    _, texts, _ = apply(PII(), ["Version 1.2.3 was released on 2024-05-01. No addresses here."])
    assert texts == ["Version 1.2.3 was released on 2024-05-01. No addresses here."]


def test_private_ips_replaced_when_asked_and_options_off():
    _, texts, _ = apply(PII(only_remove_public_ips=False, ip_replacement=["0.0.0.0"]), ["at 10.0.0.1"])
    assert texts == ["at 0.0.0.0"]
    _, texts, _ = apply(PII(remove_emails=False, remove_ips=False), ["a@b.com 8.8.8.8"])
    assert texts == ["a@b.com 8.8.8.8"]


def test_replacements_cycle():
    _, texts, _ = apply(PII(email_replacement=["A", "B"]), ["x@y.com x@y.com x@y.com"])
    assert texts == ["A B A"]
