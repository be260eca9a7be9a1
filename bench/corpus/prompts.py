"""Prompt text around a positive: snippets of code, config, shell history, logs and chat in
which a value sits, and the framing a person puts around a paste.

A template holds «value» once (or «value_json», the value as it appears inside a JSON
string), and may name «VAR» (the variable the value usually sits under, e.g. GITHUB_TOKEN),
«var» (the same in lower case) and «label» (how a person names it: "phone", "IBAN")."""

from __future__ import annotations

import json
import random
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Placed:
    text: str
    start: int
    end: int


def place(template: str, value: str, var: str = "TOKEN", label: str = "") -> Placed:
    """The template filled in, and where the value landed."""
    marker = "«value_json»" if "«value_json»" in template else "«value»"
    shown = json.dumps(value)[1:-1] if marker == "«value_json»" else value
    before, after = template.split(marker)

    def fill(part: str) -> str:
        return part.replace("«VAR»", var).replace("«var»", var.lower()).replace("«label»", label)

    before, after = fill(before), fill(after)
    return Placed(before + shown + after, len(before), len(before) + len(shown))


INTROS = (
    "",
    "Can you tell me why this fails?\n\n",
    "Please refactor this so it is easier to test:\n\n",
    "Here is my config, the service does not start. What is wrong?\n\n",
    "Explain what this does, step by step.\n\n",
    "I pasted the relevant part below. Any idea?\n\n",
    "Convert this to TypeScript please.\n\n",
    "Summarise this for the incident report:\n\n",
)
OUTROS = (
    "",
    "\n\nThanks in advance!",
    "\n\nIt worked yesterday and nothing changed on our side.",
    "\n\nKeep the answer short, I only need the fix.",
    "\n\nWhat would you change first?",
)


def frame(rng: random.Random, placed: Placed) -> Placed:
    """A person's framing around a paste: a question before, sometimes a remark after."""
    intro, outro = rng.choice(INTROS), rng.choice(OUTROS)
    return Placed(intro + placed.text + outro, placed.start + len(intro), placed.end + len(intro))


# -- where tokens sit: one line values -------------------------------------------------------

TOKEN_CONTEXTS = (
    "# credentials for the sync job\n«VAR»=«value»\nLOG_LEVEL=info\nWORKERS=4\n",
    '  501  cd ~/src/billing\n  502  export «VAR»="«value»"\n'
    "  503  python -m billing.sync --dry-run\n",
    "import os\n\nfrom client import Client\n\n\ndef make_client():\n"
    '    """Build the API client for the nightly job."""\n    return Client(\n'
    '        api_key="«value»",\n        timeout=30,\n    )\n',
    '{\n  "name": "sync-worker",\n  "«var»": "«value»",\n  "retries": 3\n}\n',
    "services:\n  worker:\n    image: worker:1.4\n    environment:\n      «VAR»: «value»\n"
    "      QUEUE: default\n",
    "2026-11-30T08:12:44.120Z DEBUG http.client sending request with credential «value» "
    "to upstream (attempt 1)\n2026-11-30T08:12:44.388Z ERROR http.client 401 Unauthorized\n",
    "I keep getting 401 from the API even though my key is «value» and it worked yesterday. "
    "Is it expired?",
    "const client = new Client({\n  token: '«value»',\n  region: 'eu-west-1',\n});\n\n"
    "export default client;\n",
    '[deploy]\nregion = "eu-central-1"\ntoken = "«value»"\nparallel = true\n',
    "docker run --rm -e «VAR»=«value» -p 8080:8080 ghcr.io/acme/worker:latest\n",
    'func newClient() *Client {\n\treturn &Client{\n\t\tToken:   "«value»",\n'
    "\t\tTimeout: 30 * time.Second,\n\t}\n}\n",
    "curl -sS https://api.example.net/v1/items -H 'X-Api-Key: «value»' | jq '.items[0]'\n",
    # no name nearby: only a detector of the token's own shape finds these
    "Is this one still valid, or was it revoked? «value»\n",
    "| env     | value |\n|---------|-------|\n| staging | «value» |\n",
)


# -- personal data: a label names the value --------------------------------------------------

PERSONAL_CONTEXTS = (
    "«label»: «value»\n",
    "Please update the «label» on file to «value» before Friday, the old one bounces.",
    '{"customer_id": 48213, "status": "active", "«var»": "«value»", "tier": "gold"}\n',
    "id,created,«var»,plan\n1042,2026-10-02,«value»,pro\n1043,2026-10-03,,free\n",
    "Write a polite reply to this ticket:\n\n> Hi, my «label» is «value», can you check "
    "why my last order never arrived?\n",
    "2026-11-30 09:14:02,511 INFO crm.sync updated contact «var»=«value» source=web-form\n",
    "Customer record:\n  plan:    enterprise\n  «label»: «value»\n  since:   2021\n",
    "Hey team, the caller gave «value» as their «label». Can someone follow up today?",
    "Draft a short reminder for the customer below, friendly tone.\n\n«value»\n",
)
