"""ControllerEndpoint: one normalised base, the prefix kept for every path, no double slashes."""

from __future__ import annotations

import pytest
from fedclient.adapters.controller_http import ControllerEndpoint
from fedclient.domain.errors import ConfigError
from hypothesis import given
from hypothesis import strategies as st

PATHS = ("api/v1/clients/add", "api/v1/packages/download", "/api/v1/packages/checksum")


@pytest.mark.parametrize(
    ("api_url", "expected"),
    [
        ("localhost", "http://localhost"),
        ("127.0.0.1", "http://127.0.0.1"),
        ("127.0.0.5:8092", "http://127.0.0.5:8092"),
        ("[::1]:8092", "http://[::1]:8092"),
        ("api.localhost", "http://api.localhost"),
        ("fedn.example.org", "https://fedn.example.org"),
        # FEDn's substring test would give this one plain http; we look at the host.
        ("mylocalhost.example.org", "https://mylocalhost.example.org"),
        ("http://fedn.example.org", "http://fedn.example.org"),
        ("HTTPS://Fedn.Example.org/", "https://fedn.example.org"),
        ("  https://fedn.example.org//  ", "https://fedn.example.org"),
    ],
)
def test_scheme_completion(api_url: str, expected: str) -> None:
    assert ControllerEndpoint.build(api_url).base == expected


def test_port_goes_into_the_authority_even_when_the_url_has_a_path() -> None:
    ep = ControllerEndpoint.build("https://studio.example.org/proj-fedn-reducer/", api_port=8443)
    assert ep.base == "https://studio.example.org:8443/proj-fedn-reducer"
    assert (
        ep.url("api/v1/clients/add") == "https://studio.example.org:8443/proj-fedn-reducer/api/v1/clients/add"
    )


@pytest.mark.parametrize("port", [8092, "8092", " 8092 "])
def test_port_accepts_numbers_and_numeric_strings(port: int | str) -> None:
    assert ControllerEndpoint.build("localhost", api_port=port).base == "http://localhost:8092"


def test_empty_port_means_none() -> None:
    assert ControllerEndpoint.build("localhost", api_port="").base == "http://localhost"


def test_port_in_url_and_same_api_port_agree() -> None:
    assert ControllerEndpoint.build("http://h:8092", api_port=8092).base == "http://h:8092"


@pytest.mark.parametrize(
    ("api_url", "port", "needle"),
    [
        ("", None, "--api-url"),
        ("ftp://h", None, "http"),
        ("http://", None, "host"),
        ("http://user:secret@h", None, "credentials"),
        ("http://h/?x=1", None, "query"),
        ("http://h:8092", 9000, "8092"),
        ("h", "abc", "--api-port"),
        ("h", 0, "--api-port"),
        ("h", 70000, "--api-port"),
        ("http://h:99999", None, "not a valid URL"),
    ],
)
def test_bad_settings_are_config_errors(api_url: str, port: int | str | None, needle: str) -> None:
    with pytest.raises(ConfigError) as err:
        ControllerEndpoint.build(api_url, api_port=port)
    assert needle in str(err.value)
    assert "secret" not in str(err.value)


@pytest.mark.parametrize("prefix", ["internal", "/internal", "internal/", "//internal//"])
@pytest.mark.parametrize("path", PATHS)
def test_prefix_is_kept_for_every_path(prefix: str, path: str) -> None:
    ep = ControllerEndpoint.build("http://h", api_port=8092, prefix=prefix)
    assert ep.url(path) == "http://h:8092/internal/" + path.lstrip("/")


def test_nested_prefix_and_empty_prefix() -> None:
    assert ControllerEndpoint.build("h.org", prefix="/a/b/").url("x") == "https://h.org/a/b/x"
    assert ControllerEndpoint.build("h.org", prefix="/").url("/x") == "https://h.org/x"
    assert str(ControllerEndpoint.build("h.org")) == "https://h.org"


_segment = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-_", min_size=1, max_size=8)
_messy = st.lists(st.one_of(_segment, st.just("")), max_size=4).map("/".join)


@given(
    host=st.sampled_from(["localhost", "fedn.example.org", "10.0.0.7", "http://h", "https://h.io"]),
    port=st.one_of(st.none(), st.integers(1, 65535)),
    url_path=_messy,
    prefix=_messy,
    path=_messy,
    slashes=st.integers(0, 3),
)
def test_urls_never_have_double_slashes_and_keep_all_segments(
    host: str, port: int | None, url_path: str, prefix: str, path: str, slashes: int
) -> None:
    api_url = f"{host}/{url_path}" if url_path else host
    ep = ControllerEndpoint.build(api_url, api_port=port, prefix="/" * slashes + prefix)
    url = ep.url("/" * slashes + path)
    scheme, rest = url.split("://", 1)
    assert scheme in ("http", "https")
    assert "//" not in rest
    assert not ep.base.endswith("/")
    segments = [s for s in f"{url_path}/{prefix}/{path}".split("/") if s]
    assert rest.split("/")[1:] == segments
    if port is not None:
        assert rest.split("/")[0].endswith(f":{port}")
