"""Safety: the Toxiproxy client drives only a Toxiproxy on 127.0.0.1, and proxies only to it."""

from __future__ import annotations

import pytest

from harness.runtime.toxiproxy import ToxiproxyApi

pytestmark = pytest.mark.unit


@pytest.mark.parametrize("url", ["http://10.0.0.7:8474", "http://localhost:8474", "http://example.com:8474"])
def test_an_api_off_loopback_is_refused(url: str) -> None:
    with pytest.raises(ValueError, match="127.0.0.1"):
        ToxiproxyApi(url)


@pytest.mark.parametrize("upstream", ["10.0.0.7:9042", "example.com:6379", "localhost:6379"])
def test_a_proxy_to_another_host_is_refused_before_anything_is_sent(upstream: str) -> None:
    api = ToxiproxyApi("http://127.0.0.1:9")   # nothing listens there: a request would fail otherwise
    with pytest.raises(ValueError, match="127.0.0.1"):
        api.create_proxy("elsewhere", upstream)
