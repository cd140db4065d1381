"""GET /metrics read by the Prometheus project's own parsers (prometheus_client), its
counters moving as boto3 acts; GET /readyz; Throttling as botocore sees it (issue 14)."""

import urllib.request

import botocore.exceptions
import pytest
from prometheus_client.openmetrics.parser import (
    text_string_to_metric_families as openmetrics_families,
)
from prometheus_client.parser import text_string_to_metric_families as prometheus_families

from conftest import Service


def scrape(svc):
    with urllib.request.urlopen(svc.url + "/metrics") as r:
        assert r.status == 200
        assert r.headers["Content-Type"].startswith("application/openmetrics-text")
        return r.read().decode()


def samples(text):
    """{(name, frozenset(labels)): value} from the strict OpenMetrics parser; the classic
    Prometheus parser must read the same text too."""
    out = {}
    for family in openmetrics_families(text):
        for s in family.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    classic = list(prometheus_families(text))
    assert {f.name for f in classic} >= {"tokengate_requests", "tokengate_mfa_verifications"}
    return out


def value(found, name, **labels):
    return found.get((name, frozenset(labels.items())), 0.0)


@pytest.fixture(scope="module")
def svc():
    s = Service({"TOKENGATE_MFA_REQUIRED": "false", "TOKENGATE_THROTTLE_BURST": "5"})
    yield s
    s.stop()


def test_metrics_parse_and_move(svc):
    before = samples(scrape(svc))
    sts = svc.root_client("sts")
    for _ in range(4):
        sts.get_caller_identity()
    iam = svc.root_client("iam")
    iam.create_user(UserName="metrics-user")
    bad = svc.client("sts", svc.root["AccessKeyId"], "x" * 40)
    with pytest.raises(botocore.exceptions.ClientError) as e:
        bad.get_caller_identity()
    assert e.value.response["Error"]["Code"] == "SignatureDoesNotMatch"
    after = samples(scrape(svc))
    ok = dict(api="sts", action="GetCallerIdentity", outcome="ok")
    assert value(after, "tokengate_requests_total", **ok) - value(
        before, "tokengate_requests_total", **ok
    ) == 4
    assert value(after, "tokengate_requests_total", api="iam", action="CreateUser", outcome="ok") == 1
    refused = dict(api="sts", action="GetCallerIdentity", outcome="SignatureDoesNotMatch")
    assert value(after, "tokengate_requests_total", **refused) == 1
    latency = dict(api="sts", action="GetCallerIdentity")
    assert value(after, "tokengate_request_duration_seconds_count", **latency) >= 5
    assert value(after, "tokengate_authentication_failures_total") >= 1
    # Labels are actions, codes, methods and fixed words: no key id, secret or user name.
    text = scrape(svc)
    for secret in (svc.root["AccessKeyId"], svc.root["SecretAccessKey"], "metrics-user"):
        assert secret not in text


def test_readyz(svc):
    with urllib.request.urlopen(svc.url + "/readyz") as r:
        assert r.status == 200
        assert b'"ready"' in r.read()


def test_throttling_as_botocore_sees_it(svc):
    bad = svc.client("sts", svc.root["AccessKeyId"], "y" * 40)
    codes = []
    for _ in range(12):
        with pytest.raises(botocore.exceptions.ClientError) as e:
            bad.get_caller_identity()
        codes.append(e.value.response["Error"]["Code"])
        if codes[-1] == "Throttling":
            assert e.value.response["Error"]["Message"] == "Rate exceeded"
            assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert "Throttling" in codes, codes
    found = samples(scrape(svc))
    assert value(found, "tokengate_throttled_total", by="address") >= 1
