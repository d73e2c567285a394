"""targetUri matching: labels right to left, IP exact, path segments left to right, most specific wins."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from hypothesis import given, strategies as st

from fetcher.credentials.target_uri import choose_secret, parse_target_uri
from fetcher.errors import ValuesError
from fetcher.lease.values import HttpsRepository


def entries(*pairs: tuple[str, str]) -> tuple[HttpsRepository, ...]:
    return tuple(HttpsRepository(secret_name=name, target_uri=target) for name, target in pairs)


@pytest.mark.parametrize(
    ("target", "url", "matches"),
    [
        # The reference's host examples.
        ("models.company.com", "https://cdn.models.company.com/m.zip", True),
        ("models.company.com", "https://models.company.com/m.zip", True),
        ("models.company.com", "https://models.cdn.company.com/m.zip", False),
        # Whole labels only.
        ("models.company.com", "https://xmodels.company.com/m.zip", False),
        ("company.com", "https://models.company.com.evil.org/m.zip", False),
        ("models.company.com", "https://MODELS.Company.COM/m.zip", True),
        # The reference's path examples.
        ("models.company.com/internal-cdn/repository", "https://models.company.com/internal-cdn/repository/ai_models/m.zip", True),
        ("models.company.com/internal-cdn/repository", "https://models.company.com/internal-cdn/ai_models/repository/m.zip", False),
        # Whole segments only.
        ("models.company.com/internal-cdn/repository", "https://models.company.com/internal-cdn/repository2/m.zip", False),
        ("models.company.com/internal-cdn/repository/", "https://models.company.com/internal-cdn/repository/m.zip", True),
        # IP addresses match exactly, never as labels.
        ("10.0.0.5", "http://10.0.0.5/m.zip", True),
        ("10.0.0.5", "http://110.0.0.5/m.zip", False),
        ("0.0.5", "http://10.0.0.5/m.zip", False),
        ("10.0.0.5/models", "http://10.0.0.5:8080/models/m.zip", True),
        ("10.0.0.5/models", "http://10.0.0.5/other/m.zip", False),
        # A port in targetUri must agree; none means any.
        ("models.company.com:8443", "https://models.company.com:8443/m.zip", True),
        ("models.company.com:8443", "https://models.company.com/m.zip", False),
        ("[::1]", "http://[::1]:8000/m.zip", True),
    ],
)
def test_match_rules(target: str, url: str, matches: bool) -> None:
    choice = choose_secret(url, entries(("the-secret", target)))
    assert (choice.secret_name == "the-secret") is matches, choice.reason


def test_most_host_labels_win_over_earlier_entries() -> None:
    configured = entries(
        ("broad", "company.com"),
        ("narrow", "models.company.com"),
        ("other", "example.org"),
    )
    choice = choose_secret("https://cdn.models.company.com/x/m.zip", configured)
    assert choice.secret_name == "narrow"
    assert "most specific of 2" in choice.reason


def test_more_path_segments_win_when_hosts_tie() -> None:
    configured = entries(
        ("root", "models.company.com"),
        ("deep", "models.company.com/a/b"),
        ("shallow", "models.company.com/a"),
    )
    assert choose_secret("https://models.company.com/a/b/m.zip", configured).secret_name == "deep"
    assert choose_secret("https://models.company.com/a/c/m.zip", configured).secret_name == "shallow"
    assert choose_secret("https://models.company.com/z/m.zip", configured).secret_name == "root"


def test_host_labels_outrank_path_segments() -> None:
    configured = entries(("path", "company.com/a/b/c"), ("host", "models.company.com"))
    assert choose_secret("https://models.company.com/a/b/c/m.zip", configured).secret_name == "host"


def test_ties_go_to_the_earlier_entry() -> None:
    configured = entries(("first", "models.company.com/a"), ("second", "models.company.com/a"))
    assert choose_secret("https://models.company.com/a/m.zip", configured).secret_name == "first"


def test_no_match_says_why() -> None:
    choice = choose_secret("https://example.org/m.zip", entries(("s", "models.company.com")))
    assert choice.secret_name is None
    assert "example.org" in choice.reason


@pytest.mark.parametrize("bad", ["", "/path/only", "user@host.com", "host with space", "host..com", "host:99999"])
def test_malformed_target_uri_is_refused(bad: str) -> None:
    with pytest.raises(ValuesError):
        parse_target_uri(bad)


label = st.from_regex(r"[a-z0-9]([a-z0-9-]{0,8}[a-z0-9])?", fullmatch=True).filter(lambda s: not s.isdigit())  # all-digit hosts are IPs
segment = st.from_regex(r"[A-Za-z0-9_.-]{1,10}", fullmatch=True).filter(lambda s: s not in (".", ".."))


@given(
    host=st.lists(label, min_size=1, max_size=5),
    extra_host=st.lists(label, max_size=3),
    path=st.lists(segment, max_size=4),
    extra_path=st.lists(segment, max_size=3),
)
def test_property_suffix_labels_and_prefix_segments_always_match(host, extra_host, path, extra_path) -> None:
    target = ".".join(host) + ("/" + "/".join(path) if path else "")
    url = "https://" + ".".join(extra_host + host) + "/" + "/".join(path + extra_path + ["m.zip"])
    assert choose_secret(url, entries(("s", target))).secret_name == "s"


@given(host=st.lists(label, min_size=2, max_size=4), prefix=label)
def test_property_a_label_glued_to_the_target_never_matches(host, prefix) -> None:
    target = ".".join(host)
    url = f"https://{prefix}{target}/m.zip"  # e.g. "xmodels.company.com"
    assert choose_secret(url, entries(("s", target))).secret_name is None


def test_explain_json_names_the_secret_for_each_rule(tmp_path: Path, cli) -> None:
    values = tmp_path / "values.yaml"
    values.write_text(yaml.safe_dump({
        "server": {"modelRepositories": {"https": [
            {"secretName": "ngc-model-pull", "targetUri": "models.company.com"},
            {"secretName": "internal", "targetUri": "models.company.com/internal-cdn/repository"},
            {"secretName": "by-ip", "targetUri": "10.1.2.3"},
        ]}},
        "lease": {"models": [
            "name=a,uri=https://cdn.models.company.com/m.zip",
            "name=b,uri=https://models.company.com/internal-cdn/repository/ai_models/m.zip",
            "name=c,uri=https://models.company.com/internal-cdn/ai_models/repository/m.zip",
            "name=d,uri=https://models.cdn.company.com/m.zip",
            "name=e,uri=http://10.1.2.3/m.zip",
            {"name": "f", "uri": "http://10.1.2.33/m.zip"},
        ]},
    }))
    result = cli("explain", "--values", values, "--json")
    assert result.status == 0, result.stderr
    plans = json.loads(result.stdout)
    assert [set(p) for p in plans] == [{"name", "uri", "source", "repository", "location", "secret", "reason"}] * 6
    assert {p["name"]: p["secret"] for p in plans} == {
        "a": "ngc-model-pull", "b": "internal", "c": "ngc-model-pull", "d": None, "e": "by-ip", "f": None,
    }
    assert all(p["source"] == "https" for p in plans)


def test_explain_reports_a_malformed_target_uri(tmp_path: Path, cli) -> None:
    values = tmp_path / "values.yaml"
    values.write_text(yaml.safe_dump({
        "server": {"modelRepositories": {"https": [{"secretName": "s", "targetUri": "bad..host"}]}},
        "lease": {"models": ["name=a,uri=https://x.org/m.zip"]},
    }))
    result = cli("explain", "--values", values)
    assert result.status == 3
    assert "https[0]" in result.stderr and "'s'" in result.stderr
