"""PAC files generated from the policy, for browsers and WPAD.

- `all`: everything through the proxy except plain host names, localhost, private and
  link-local addresses and the bypass domains (the egress deployment);
- `ai-only`: only the hosts of catalogued AI services (and the rules' own hosts) through the
  proxy, the rest DIRECT (the monitor-first rollout).

AI hosts are checked first, in both modes, so a bypass domain cannot exempt one. The script
uses only standard PAC functions, never resolves a name (private-address checks apply to IP
literals only), and looks hosts up in object tables by walking their labels, so it stays fast
for large catalogs. Several proxies give failover (`PROXY a; PROXY b`), optionally rotated by
a stable hash of the host so that each proxy keeps its caches warm. A proxy given as
`https://host:port` is named `HTTPS host:port`: the browser connects to it with TLS (an HTTPS
proxy, so that Basic passwords never cross the network in clear).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable

from proxy.policy.model import Policy
from proxy.policy.patterns import HostPattern

MODES = ("all", "ai-only")
CONTENT_TYPE = "application/x-ns-proxy-autoconfig"


def ai_host_patterns(policy: Policy) -> list[HostPattern]:
    """Every host pattern a decision may need to see: the catalog's and the rules' own."""
    patterns = [h for s in policy.services for h in s.hosts]
    patterns += [h for r in policy.rules for h in r.match.hosts or ()]
    return patterns


_ADDRESS = re.compile(r"(?:[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?|\[[0-9A-Fa-f:.]+\]):(\d{1,5})")


def pac_entry(proxy: str) -> str:
    """A proxy as the PAC file names it: `HOST:PORT` or `http://HOST:PORT` is `PROXY
    HOST:PORT`; `https://HOST:PORT`, a proxy clients reach over TLS, is `HTTPS HOST:PORT`
    (Chrome, Edge, Firefox). ValueError says what else it would need to be."""
    text = proxy.strip()
    shown = repr(proxy) if "@" not in proxy else "a URL with credentials"  # never the password
    if text.startswith(("PROXY ", "HTTPS ")):  # already a PAC entry
        keyword, _, address = text.partition(" ")
    else:
        scheme, sep, address = text.partition("://")
        if not sep:
            scheme, address = "http", text
        keyword = {"http": "PROXY", "https": "HTTPS"}.get(scheme.lower(), "")
        if not keyword:
            raise ValueError(f"{shown}: a PAC proxy is HOST:PORT, http:// or https://HOST:PORT")
    address = address.rstrip("/")
    match = _ADDRESS.fullmatch(address)
    if match is None or not 0 < int(match.group(1)) < 65536:
        raise ValueError(f"{shown}: a PAC proxy needs a host and a port, HOST:PORT")
    return f"{keyword} {address}"


def render(
    policy: Policy,
    proxies: Iterable[str],
    mode: str = "all",
    bypass: Iterable[str] = (),
    spread: bool = False,
) -> str:
    proxies = [pac_entry(p) for p in proxies]
    if not proxies:
        raise ValueError("at least one proxy address is needed")
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}")
    exact, suffixes, globs = {}, {}, []
    for pattern in ai_host_patterns(policy):
        if pattern.kind == "exact":
            exact[pattern.text] = 1
        elif pattern.kind == "subdomains":
            suffixes[pattern.suffix] = 1
        else:
            globs.append(pattern.text)
    bypass_domains = sorted({b.strip().lstrip("*").lstrip(".").lower() for b in bypass if b})
    return _TEMPLATE % {
        "digest": policy.digest[:12],
        "mode": mode,
        "proxies": json.dumps(proxies),
        "exact": json.dumps(dict(sorted(exact.items())), separators=(",", ":")),
        "suffixes": json.dumps(dict(sorted(suffixes.items())), separators=(",", ":")),
        "globs": json.dumps(sorted(set(globs))),
        "bypass": json.dumps(bypass_domains),
        "spread": "true" if spread else "false",
        "ai_only": "true" if mode == "ai-only" else "false",
    }


_TEMPLATE = """\
// aiwarden proxy auto-config, generated from policy %(digest)s, mode %(mode)s.
var PROXIES = %(proxies)s;
var AI_EXACT = %(exact)s;
var AI_SUFFIXES = %(suffixes)s;
var AI_GLOBS = %(globs)s;
var BYPASS = %(bypass)s;
var SPREAD = %(spread)s;
var AI_ONLY = %(ai_only)s;

function isAIHost(host) {
  if (AI_EXACT.hasOwnProperty(host)) return true;
  for (var i = host.indexOf("."); i >= 0; i = host.indexOf(".", i + 1)) {
    if (AI_SUFFIXES.hasOwnProperty(host.substring(i + 1))) return true;
  }
  for (var j = 0; j < AI_GLOBS.length; j++) {
    if (shExpMatch(host, AI_GLOBS[j])) return true;
  }
  return false;
}

function isLocal(host) {
  if (isPlainHostName(host) || host == "localhost" || dnsDomainIs(host, ".localhost")) return true;
  if (/^[0-9]+\\.[0-9]+\\.[0-9]+\\.[0-9]+$/.test(host)) {  // an IPv4 literal: no DNS needed
    return isInNet(host, "10.0.0.0", "255.0.0.0") || isInNet(host, "172.16.0.0", "255.240.0.0")
      || isInNet(host, "192.168.0.0", "255.255.0.0") || isInNet(host, "127.0.0.0", "255.0.0.0")
      || isInNet(host, "169.254.0.0", "255.255.0.0");
  }
  if (host.indexOf(":") >= 0) {  // an IPv6 literal
    var h = host.replace(/^\\[|\\]$/g, "");
    return h == "::1" || /^f[cd][0-9a-f]{2}:/.test(h) || /^fe[89ab][0-9a-f]:/.test(h);
  }
  return false;
}

function isBypassed(host) {
  for (var i = 0; i < BYPASS.length; i++) {
    if (host == BYPASS[i] || dnsDomainIs(host, "." + BYPASS[i])) return true;
  }
  return false;
}

function viaProxy(host) {
  if (!SPREAD || PROXIES.length < 2) return PROXIES.join("; ");
  var hash = 0;
  for (var i = 0; i < host.length; i++) hash = (hash * 31 + host.charCodeAt(i)) %% 1000003;
  var first = hash %% PROXIES.length;
  return PROXIES.slice(first).concat(PROXIES.slice(0, first)).join("; ");
}

function FindProxyForURL(url, host) {
  host = host.toLowerCase();
  if (host.charAt(host.length - 1) == ".") host = host.substring(0, host.length - 1);
  if (isAIHost(host)) return viaProxy(host);
  if (AI_ONLY || isLocal(host) || isBypassed(host)) return "DIRECT";
  return viaProxy(host);
}
"""
