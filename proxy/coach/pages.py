"""The coaching pages a browser sees: the warning with Proceed and Cancel, and what follows.

Self-contained HTML (inline style, no script, no external assets), every value escaped. The
form posts to the same origin as the page (`PREFIX` on the warned host, which the proxy
intercepts and answers itself), so no other host, certificate or PAC entry is involved.
"""

from __future__ import annotations

import html
from dataclasses import dataclass

PREFIX = "/.aiwarden/"  # the paths the proxy answers itself on an intercepted host
ACK = PREFIX + "ack/"  # + token: the link a warning carries
PROCEED = PREFIX + "proceed"
CANCEL = PREFIX + "cancel"
_SAFE_LINK_SCHEMES = ("https://", "http://", "mailto:")


def duration(seconds: int) -> str:
    """15 minutes, 2 hours, 90 seconds: how long a grant lasts, in words."""
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size and seconds % size == 0:
            n = seconds // size
            return f"{n} {unit}{'s' if n != 1 else ''}"
    return f"{seconds} second{'s' if seconds != 1 else ''}"


@dataclass(frozen=True, slots=True)
class Warning:
    """What a warning page shows."""

    service: str  # the service's name, or the host
    message: str
    rule: str
    reference: str
    token: str
    ttl: int
    justification: str  # required | optional | none
    alternative: str | None = None
    contact: str | None = None
    return_path: str = ""  # where Proceed leads back to (same origin), if anywhere
    problem: str | None = None  # why the last try did not go through


def _link_or_text(text: str) -> str:
    e = html.escape
    if text.startswith(_SAFE_LINK_SCHEMES):
        return f'<a href="{e(text)}">{e(text.removeprefix("mailto:"))}</a>'
    return e(text)


def render_warning(w: Warning) -> str:
    e = html.escape
    alternative = (
        f'<p class="alternative" id="alternative">Approved instead: {_link_or_text(w.alternative)}'
        "</p>"
        if w.alternative
        else ""
    )
    contact = f'<p class="contact">Questions: {_link_or_text(w.contact)}</p>' if w.contact else ""
    problem = f'<p class="problem" id="problem">{e(w.problem)}</p>' if w.problem else ""
    field = ""
    if w.justification != "none":
        required = " required" if w.justification == "required" else ""
        label = "Why do you need it?" + ("" if required else " (optional)")
        field = (
            f'<label for="justification">{label}</label>'
            f'<textarea id="justification" name="justification" maxlength="500" rows="3"'
            f"{required}></textarea>"
        )
    return _WARNING.format(
        service=e(w.service),
        message=e(w.message),
        alternative=alternative,
        contact=contact,
        problem=problem,
        ttl=e(duration(w.ttl)),
        proceed=PROCEED,
        cancel=CANCEL,
        token=e(w.token),
        return_path=e(w.return_path),
        field=field,
        rule=e(w.rule),
        reference=e(w.reference),
    )


def render_outcome(title: str, text: str, status_class: str = "done") -> str:
    """A short page after Proceed, Cancel or a link that cannot be used."""
    return _OUTCOME.format(title=html.escape(title), text=html.escape(text), cls=status_class)


_STYLE = """<style>
body{font:16px/1.5 system-ui,-apple-system,"Segoe UI",sans-serif;background:#f4f5f7;color:#1d2330;
margin:0;display:flex;min-height:100vh;align-items:center;justify-content:center}
main{background:#fff;max-width:38rem;margin:2rem;padding:2rem 2.5rem;border-radius:12px;
box-shadow:0 2px 12px rgba(0,0,0,.08);border-top:6px solid #d68910}
main.done{border-top-color:#1e8449} main.refused{border-top-color:#c0392b}
h1{font-size:1.4rem;margin:0 0 1rem} .message{font-size:1.1rem} .problem{color:#c0392b}
label{display:block;font-weight:600;margin:1rem 0 .3rem}
textarea{width:100%;box-sizing:border-box;font:inherit}
.buttons{display:flex;gap:1rem;margin-top:1rem} button{font:inherit;padding:.5rem 1.2rem}
footer{margin-top:1.5rem;font-size:.85rem;color:#7a8194}
</style>"""

_WARNING = (
    """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Not approved: {service}</title>"""
    + _STYLE.replace("{", "{{").replace("}", "}}")
    + """</head>
<body><main>
<h1>{service} is not approved by company policy</h1>
<p class="message" id="message">{message}</p>
{alternative}
{problem}
<form method="post" action="{proceed}" id="coaching">
<input type="hidden" name="token" value="{token}">
<input type="hidden" name="return" value="{return_path}">
{field}
<p>If you proceed, you may use {service} for {ttl}; then you will be asked again. Your choice
and what you write are recorded.</p>
<div class="buttons">
<button type="submit" id="proceed">Proceed</button>
<button type="submit" id="cancel" formaction="{cancel}" formnovalidate>Cancel</button>
</div>
</form>
{contact}
<footer>Rule {rule}, reference {reference}. Filtered by aiwarden.</footer>
</main></body></html>
"""
)

_OUTCOME = (
    """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>"""
    + _STYLE.replace("{", "{{").replace("}", "}}")
    + """</head>
<body><main class="{cls}"><h1 id="title">{title}</h1><p id="text">{text}</p>
<footer>Filtered by aiwarden.</footer></main></body></html>
"""
)
