"""When the start warns that Basic passwords may cross the network in clear
(proxy/mitm/proxy_tls.py); the warning itself is seen at start in tests/e2e/test_https_proxy.py."""

from __future__ import annotations

import pytest

from proxy.mitm.proxy_tls import clear_text_warning


@pytest.mark.parametrize(
    "proxyauth, require_tls, warns",
    [
        ("@/etc/aiwarden/htpasswd", False, True),  # Basic over plain HTTP: warned
        ("ldap:ldap.corp.example:389:cn=r:pw:ou=people", False, True),
        ("@/etc/aiwarden/htpasswd", True, False),  # Basic inside TLS only
        ("", False, False),  # no Basic: Kerberos alone, or no authentication
        (None, False, False),
    ],
)
def test_the_warning(proxyauth, require_tls, warns):
    message = clear_text_warning(proxyauth, require_tls)
    assert (message is not None) == warns
    if message:
        assert "clear text" in message and "--require-proxy-tls" in message
        assert "pw" not in message.split()  # never the spec's secrets
