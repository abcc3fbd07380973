"""PII formatting as FineWeb did it (Penedo et al. 2024, sec. 3.7): email addresses and public IP addresses are
replaced by fixed placeholders. Regular expressions, defaults and placeholders are datatrove's PIIFormatter."""

from __future__ import annotations

import ipaddress
import re
from dataclasses import field

import pyarrow as pa

from curate.inflight import tracked
from curate.stage import Mapper
from curate_filters.heuristics.common import texts

EMAIL = re.compile(
    r"\b[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*@(?:(?:[A-Za-z0-9](?:["
    r"A-Za-z0-9-]*[A-Za-z0-9])?\.)+[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?|\[(?:(?:25[0-5]|2[0-4][0-9]|["
    r"01]?[0-9][0-9]?)\.){3}(?:25[0-5]|2[0-4][0-9]|[01]?[0-9][0-9]?|[A-Za-z0-9-]*[A-Za-z0-9]:)])"
)
IPV4 = re.compile(r"(?:(?:25[0-5]|2[0-4][0-9]|[01]?[0-9][0-9]?)\.){3}(?:25[0-5]|2[0-4][0-9]|[01]?[0-9][0-9]?)")
# A cheap test before the IPv4 expression: four dot-separated digit groups need "digit.digit" somewhere.
_DIGIT_DOT_DIGIT = re.compile(r"\d\.\d")


def is_public_ip(text: str) -> bool:
    """True for a globally routable address (not private, loopback, link-local, reserved...)."""
    try:
        return ipaddress.ip_address(text).is_global
    except ValueError:
        return False


class _Cycle:
    """Hands out replacements in turn, as datatrove's PIIReplacer does."""

    def __init__(self, values: list[str]) -> None:
        self.values = values or [""]
        self.i = 0

    def next(self) -> str:
        value = self.values[self.i]
        self.i = (self.i + 1) % len(self.values)
        return value


class PII(Mapper):
    """Replace email addresses and public IP addresses (FineWeb's PII formatting, Penedo et al. 2024).

    Counters: emails_replaced, ips_replaced. Never rejects a document.
    """

    name = "pii"
    reasons = ()
    remove_emails: bool = True
    remove_ips: bool = True
    # Replace only globally routable IPs (private and reserved ranges are not personal data).
    only_remove_public_ips: bool = True
    # Placeholders, used in turn. example.com/org are reserved for examples.
    email_replacement: list[str] = field(
        default_factory=lambda: ["email@example.com", "firstname.lastname@example.org"]
    )
    # datatrove's placeholders: random addresses that did not answer pings when its list was made.
    ip_replacement: list[str] = field(
        default_factory=lambda: [
            "22.214.171.124",
            "126.96.36.199",
            "188.8.131.52",
            "184.108.40.206",
            "220.127.116.11",
            "18.104.22.168",
        ]
    )

    def __post_init__(self) -> None:
        self._emails = _Cycle(list(self.email_replacement))
        self._ips = _Cycle(list(self.ip_replacement))

    def map_batch(self, batch: pa.Table) -> pa.Table:
        emails = ips = 0
        out: list[str] = []
        changed = False
        for text in tracked(texts(batch)):
            new = text
            if self.remove_emails and "@" in new:
                new, n = self._replace_emails(new)
                emails += n
            if self.remove_ips and _DIGIT_DOT_DIGIT.search(new):
                new, n = self._replace_ips(new)
                ips += n
            changed = changed or new is not text
            out.append(new)
        if emails:
            self.count("emails_replaced", emails)
        if ips:
            self.count("ips_replaced", ips)
        if not changed:
            return batch
        idx = batch.schema.get_field_index("text")
        return batch.set_column(idx, "text", pa.array(out, pa.string()))

    def _replace_emails(self, text: str) -> tuple[str, int]:
        n = 0

        def sub(m: re.Match[str]) -> str:
            nonlocal n
            n += 1
            return self._emails.next()

        new = EMAIL.sub(sub, text)
        return (new, n) if n else (text, 0)

    def _replace_ips(self, text: str) -> tuple[str, int]:
        n = 0

        def sub(m: re.Match[str]) -> str:
            nonlocal n
            ip = m.group(0)
            if self.only_remove_public_ips and not is_public_ip(ip):
                return ip
            if not self.only_remove_public_ips and not _valid_ip(ip):
                return ip
            n += 1
            return self._ips.next()

        new = IPV4.sub(sub, text)
        return (new, n) if n else (text, 0)


def _valid_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
        return True
    except ValueError:
        return False
