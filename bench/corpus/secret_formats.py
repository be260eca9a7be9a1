"""Secrets by their published formats: prefixes, lengths, alphabets and checksums of each
provider's tokens, private keys made by `cryptography`, JWTs signed for real, credentials in
URLs and headers, and passwords as people choose them. Every value is random."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import random
import string
import struct
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import quote

from corpus.checksums import base62_crc32, bech32_encode

ALNUM = string.ascii_letters + string.digits
UPPER_ALNUM = string.ascii_uppercase + string.digits
LOWER_ALNUM = string.ascii_lowercase + string.digits
HEX = "0123456789abcdef"
B64 = ALNUM + "+/"
B64URL = ALNUM + "-_"
BASE32 = string.ascii_uppercase + "234567"

Make = Callable[[random.Random], str]


@dataclass(frozen=True, slots=True)
class SecretKind:
    family: str
    name: str
    make: Make
    var: str = "API_TOKEN"  # the variable it usually sits under
    contexts: tuple[str, ...] | None = None  # its own templates (None: prompts.TOKEN_CONTEXTS)


def pick(alphabet: str, n: int) -> Make:
    return lambda rng: "".join(rng.choice(alphabet) for _ in range(n))


def cat(*parts: str | Make) -> Make:
    """A value made of fixed strings and random parts."""
    return lambda rng: "".join(p if isinstance(p, str) else p(rng) for p in parts)


def one_of(*makes: str | Make) -> Make:
    return lambda rng: (lambda m: m if isinstance(m, str) else m(rng))(rng.choice(makes))


def digits(low: int, high: int) -> Make:
    return lambda rng: (
        str(rng.randrange(1, 10)) + pick(string.digits, rng.randint(low, high) - 1)(rng)
    )


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


# -- tokens with checksums -------------------------------------------------------------------


def crc_token(prefix: str) -> Make:
    """GitHub classic and npm: prefix, 30 random base62 characters, their CRC32 in base62."""

    def make(rng: random.Random) -> str:
        body = pick(ALNUM, 30)(rng)
        return prefix + body + base62_crc32(body)

    return make


def age_secret_key(rng: random.Random) -> str:
    return bech32_encode("age-secret-key-", rng.randbytes(32)).upper()


def pypi_token(rng: random.Random) -> str:
    """A macaroon (v2 binary): location pypi.org, an identifier, a caveat and a signature."""
    ident = json.dumps({"version": 1, "permissions": "user"}).encode()
    caveat = json.dumps([1, [pick(HEX, 32)(rng)]]).encode()
    body = (
        b"\x02\x01\x08pypi.org\x02"
        + bytes([len(ident)])
        + ident
        + b"\x00\x02"
        + bytes([len(caveat)])
        + caveat
        + b"\x00\x00\x06\x20"
        + rng.randbytes(32)
    )
    return "pypi-" + b64url(body)


def discord_bot_token(rng: random.Random) -> str:
    user_id = str(rng.randrange(10**17, 10**19))
    return b64url(user_id.encode()) + "." + pick(B64URL, 6)(rng) + "." + pick(B64URL, 38)(rng)


def grafana_cloud_token(rng: random.Random) -> str:
    claims = {
        "o": str(rng.randrange(10**5, 10**7)),
        "n": "stack-" + pick(LOWER_ALNUM, 6)(rng),
        "k": pick(ALNUM, 24)(rng),
        "m": {"r": "prod-eu-west-2"},
    }
    return "glc_" + base64.b64encode(json.dumps(claims, separators=(",", ":")).encode()).decode()


def grafana_legacy_key(rng: random.Random) -> str:
    claims = {"k": pick(ALNUM, 32)(rng), "n": "ci-" + pick(LOWER_ALNUM, 5)(rng), "id": 1}
    return base64.b64encode(json.dumps(claims, separators=(",", ":")).encode()).decode()


def mapbox_secret(rng: random.Random) -> str:
    claims = {"u": "acme-" + pick(LOWER_ALNUM, 5)(rng), "a": pick(LOWER_ALNUM, 25)(rng)}
    return (
        "sk."
        + b64url(json.dumps(claims, separators=(",", ":")).encode())
        + "."
        + pick(B64URL, 22)(rng)
    )


def azure_storage_key(rng: random.Random) -> str:
    return base64.b64encode(rng.randbytes(64)).decode()


def tableau_token(rng: random.Random) -> str:
    """A Tableau personal access token's secret: 16 bytes of base64, `:`, 32 base62."""
    return base64.b64encode(rng.randbytes(16)).decode() + ":" + pick(ALNUM, 32)(rng)


def atlassian_dc_token(rng: random.Random) -> str:
    """A Jira or Confluence Data Center PAT: base64 of a 12-digit id, `:`, 20 random bytes."""
    raw = str(rng.randrange(10**11, 10**12)).encode() + b":" + rng.randbytes(20)
    return base64.b64encode(raw).decode()


def azure_refresh_token(rng: random.Random) -> str:
    """A Microsoft identity platform refresh token: `0.A` and base64url parts, the second
    starting `Ag`."""
    return (
        "0.A"
        + pick(B64URL, rng.randint(60, 120))(rng)
        + ".AgABAAEAAAD"
        + pick(B64URL, rng.randint(300, 700))(rng)
    )


def azure_sas_signature(rng: random.Random) -> str:
    return quote(base64.b64encode(rng.randbytes(32)).decode(), safe="")


# -- JWTs --------------------------------------------------------------------------------------


def jwt_signed(rng: random.Random) -> str:
    header = {"alg": "HS256", "typ": "JWT"}
    claims = {
        "sub": str(rng.randrange(10**6, 10**9)),
        "iat": rng.randrange(1_600_000_000, 1_800_000_000),
        "scope": rng.choice(["read", "read write", "admin"]),
    }
    signing_input = b64url(json.dumps(header).encode()) + "." + b64url(json.dumps(claims).encode())
    signature = hmac.new(rng.randbytes(32), signing_input.encode(), hashlib.sha256).digest()
    return signing_input + "." + b64url(signature)


def jwt_unsecured(rng: random.Random) -> str:
    """RFC 7519's unsecured JWT: alg none, an empty signature after the second dot."""
    claims = {
        "sub": pick(LOWER_ALNUM, 10)(rng),
        "role": "service",
        "exp": rng.randrange(1_800_000_000, 2_000_000_000),
    }
    return (
        b64url(json.dumps({"alg": "none"}).encode())
        + "."
        + b64url(json.dumps(claims).encode())
        + "."
    )


# -- private keys ------------------------------------------------------------------------------


def _keys():
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

    return serialization, ec, ed25519, rsa


def _seeded_scalar(rng: random.Random) -> int:
    # P-256's order is just below 2**256: a random 255-bit number is a valid private value
    return rng.getrandbits(255) | 1


def pem_ec_key(rng: random.Random) -> str:
    serialization, ec, _, _ = _keys()
    key = ec.derive_private_key(_seeded_scalar(rng), ec.SECP256R1())
    fmt = rng.choice(
        [serialization.PrivateFormat.TraditionalOpenSSL, serialization.PrivateFormat.PKCS8]
    )
    return (
        key.private_bytes(serialization.Encoding.PEM, fmt, serialization.NoEncryption())
        .decode()
        .strip()
    )


def pem_rsa_key(rng: random.Random) -> str:
    """An RSA key whose body is the right shape (generating real ones per seed is too slow):
    PKCS#1 DER header bytes, then random bytes, base64 at 64 per line."""
    der = bytes.fromhex("308204a40201000282010100") + rng.randbytes(1180)
    body = base64.b64encode(der).decode()
    lines = "\n".join(body[i : i + 64] for i in range(0, len(body), 64))
    return f"-----BEGIN RSA PRIVATE KEY-----\n{lines}\n-----END RSA PRIVATE KEY-----"


def _ssh_string(data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + data


def openssh_key(rng: random.Random) -> str:
    """An ed25519 key in OpenSSH's own format, its check integers from the seed
    (`cryptography` would draw them from os.urandom)."""
    serialization, _, ed25519, _ = _keys()
    key = ed25519.Ed25519PrivateKey.from_private_bytes(rng.randbytes(32))
    raw = serialization.Encoding.Raw
    public = key.public_key().public_bytes(raw, serialization.PublicFormat.Raw)
    private = key.private_bytes(raw, serialization.PrivateFormat.Raw, serialization.NoEncryption())
    public_blob = _ssh_string(b"ssh-ed25519") + _ssh_string(public)
    check = rng.randbytes(4)
    section = (
        check
        + check
        + public_blob
        + _ssh_string(private + public)
        + _ssh_string(f"deploy@build-{rng.randrange(100)}".encode())
    )
    section += bytes(range(1, 1 + -len(section) % 8))
    blob = (
        b"openssh-key-v1\0"
        + _ssh_string(b"none") * 2
        + _ssh_string(b"")
        + struct.pack(">I", 1)
        + _ssh_string(public_blob)
        + _ssh_string(section)
    )
    body = base64.b64encode(blob).decode()
    lines = "\n".join(body[i : i + 70] for i in range(0, len(body), 70))
    return f"-----BEGIN OPENSSH PRIVATE KEY-----\n{lines}\n-----END OPENSSH PRIVATE KEY-----"


def putty_key(rng: random.Random) -> str:
    """A PuTTY v3 key file, unencrypted, with its MAC (HMAC-SHA-256 under an empty key)."""
    serialization, _, ed25519, _ = _keys()
    key = ed25519.Ed25519PrivateKey.from_private_bytes(rng.randbytes(32))
    public = key.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )
    public_blob = _ssh_string(b"ssh-ed25519") + _ssh_string(public)
    private_blob = _ssh_string(
        key.private_bytes(
            serialization.Encoding.Raw,
            serialization.PrivateFormat.Raw,
            serialization.NoEncryption(),
        )
    )
    comment = f"deploy@build-{rng.randrange(100)}"
    mac_data = b"".join(
        _ssh_string(x)
        for x in (b"ssh-ed25519", b"none", comment.encode(), public_blob, private_blob)
    )
    mac = hmac.new(b"", mac_data, hashlib.sha256).hexdigest()

    def lines(blob: bytes) -> list[str]:
        text = base64.b64encode(blob).decode()
        return [text[i : i + 64] for i in range(0, len(text), 64)]

    pub, priv = lines(public_blob), lines(private_blob)
    return "\n".join(
        [
            "PuTTY-User-Key-File-3: ssh-ed25519",
            "Encryption: none",
            f"Comment: {comment}",
            f"Public-Lines: {len(pub)}",
            *pub,
            f"Private-Lines: {len(priv)}",
            *priv,
            f"Private-MAC: {mac}",
        ]
    )


KEY_CONTEXTS = (
    "Here is the key the deploy job uses, why does ssh say 'invalid format'?\n\n«value»\n",
    "$ cat ~/.ssh/deploy_key\n«value»\n$ ssh -i ~/.ssh/deploy_key git@git.example.net\n",
    'SIGNING_KEY = """«value»\n"""\n\n\ndef sign(payload: bytes) -> bytes:\n'
    "    return _signer(SIGNING_KEY).sign(payload)\n",
    "cat > /etc/ssl/private/app.key <<'EOF'\n«value»\nEOF\nchmod 600 /etc/ssl/private/app.key\n",
)
GCP_CONTEXTS = (
    '{\n  "type": "service_account",\n  "project_id": "billing-prod-4821",\n'
    '  "private_key_id": "8f0a3c1d",\n  "private_key": "«value_json»\\n",\n'
    '  "token_uri": "https://oauth2.googleapis.com/token"\n}\n',
)

# -- credentials by context: URLs, headers, passwords, values under secret-like keys --------

_USERS = ("admin", "deploy", "app", "svc_backup", "postgres", "root", "jenkins", "reporting")
_WORDS = (
    "tiger",
    "orange",
    "summer",
    "dragon",
    "monkey",
    "sunshine",
    "falcon",
    "purple",
    "winter",
    "coffee",
    "guitar",
    "rocket",
    "banana",
    "horse",
    "staple",
    "battery",
    "correct",
    "maple",
    "castle",
    "silver",
    "hunter",
    "pepper",
    "river",
    "garden",
)


def human_password(rng: random.Random) -> str:
    """The shapes people choose: Word+year+symbol, words and digits, passphrases, leet."""
    word = rng.choice(_WORDS)
    shape = rng.randrange(5)
    if shape == 0:
        return word.capitalize() + str(rng.randrange(1960, 2025)) + rng.choice("!@#$%&*")
    if shape == 1:
        return word.capitalize() + rng.choice(_WORDS).capitalize() + str(rng.randrange(10, 100))
    if shape == 2:
        return " ".join(rng.sample(_WORDS, 4))
    if shape == 3:
        leet = word.translate(str.maketrans("aeio", "4310"))
        return leet.capitalize() + rng.choice("!?#") + str(rng.randrange(100, 1000))
    return word + str(rng.randrange(1, 99999))


PASSWORD_CONTEXTS = (
    "DB_HOST=db.internal\nDB_USER=app\nDB_PASSWORD=«value»\nDB_NAME=orders\n",
    "my password is «value» but the login page says it is wrong, can you help?",
    '{\n  "username": "admin",\n  "password": "«value»"\n}\n',
    'database:\n  host: localhost\n  user: reporting\n  password: "«value»"\n',
    "mysql -h 127.0.0.1 -u admin -p'«value»' orders < dump.sql\n",
    "PGPASSWORD='«value»' psql -h db.internal -U app -c 'select count(*) from orders'\n",
    "spring.datasource.url=jdbc:postgresql://db:5432/app\n"
    "spring.datasource.username=app\nspring.datasource.password=«value»\n",
    "log in as root with the password «value» and restart the service\n",
)


def url_credentials(rng: random.Random) -> str:
    """Only the password: the part of the URL that is secret."""
    return one_of(human_password, pick(ALNUM, 24), pick(HEX, 32))(rng).replace(" ", "-")


URL_CONTEXTS = (
    "DATABASE_URL=postgres://orders_app:«value»@db.internal:5432/orders\n",
    'client = MongoClient("mongodb+srv://analytics:«value»@cluster0.a1b2c.mongodb.net/app")\n',
    "REDIS_URL=redis://default:«value»@cache.internal:6379/0\n",
    "celery:\n  broker_url: amqp://worker:«value»@rabbitmq:5672/vhost\n",
    "git remote set-url origin https://deploy-bot:«value»@git.example.net/acme/app.git\n",
    "Why does this hang? ftp://reports:«value»@files.example.org/upload/report.csv\n",
    "engine = create_engine('mysql+pymysql://shop:«value»@10.0.3.7/shop')\n",
)


def bearer_token(rng: random.Random) -> str:
    return one_of(
        pick(B64URL, 43), pick(ALNUM, 32), pick(HEX, 40), cat(pick(ALNUM, 8), ".", pick(B64URL, 40))
    )(rng)


BEARER_CONTEXTS = (
    "curl -H 'Authorization: Bearer «value»' https://api.internal.example/v2/reports\n",
    "GET /v2/reports HTTP/1.1\nHost: api.internal.example\nAuthorization: Bearer «value»\n"
    "Accept: application/json\n",
    'headers = {\n    "Authorization": "Bearer «value»",\n    "Accept": "application/json",\n}\n'
    "response = requests.get(url, headers=headers, timeout=10)\n",
    "fetch(url, { headers: { Authorization: `Bearer «value»` } })\n",
)


def basic_credentials(rng: random.Random) -> str:
    user = rng.choice(_USERS)
    return base64.b64encode(f"{user}:{human_password(rng)}".encode()).decode()


BASIC_CONTEXTS = (
    "curl -H 'Authorization: Basic «value»' https://jenkins.example.net/api/json\n",
    "POST /upload HTTP/1.1\nHost: files.example.net\nAuthorization: Basic «value»\n"
    "Content-Type: application/octet-stream\n",
    'proxy_set_header Authorization "Basic «value»";\n',
)

HEX_SECRET_CONTEXTS = (
    '{\n  "client_id": "web-portal",\n  "client_secret": "«value»",\n  "redirect_uri": '
    '"https://portal.example.com/cb"\n}\n',
    "API_SECRET=«value»\n",
    "webhook:\n  url: https://hooks.example.com/in\n  signing_secret: «value»\n",
    'app.config["SECRET_KEY"] = "«value»"\n',
    "export ENCRYPTION_KEY=«value»\n",
)
GENERIC_CONTEXTS = (
    "PAYMENT_GATEWAY_KEY=«value»\n",
    "INTERNAL_API_TOKEN: «value»\n",
    'SESSION_SECRET = "«value»"\n',
    "export PARTNER_FEED_TOKEN='«value»'\n",
    '"upload_service_key": "«value»",\n',
)

AZURE_STORAGE_CONTEXTS = (
    "AZURE_STORAGE_CONNECTION_STRING=DefaultEndpointsProtocol=https;AccountName=acmelogs;"
    "AccountKey=«value»;EndpointSuffix=core.windows.net\n",
    'conn = "DefaultEndpointsProtocol=https;AccountName=backups01;AccountKey=«value»"\n',
)
AZURE_STORAGE_NAMED_CONTEXTS = (  # the key's name on another line, in a brace, after `||`
    'static const std::string AzuriteAccountKey{\n    "«value»"};\n',
    '    public static final String DEFAULT_ACCOUNT_KEY\n            = "«value»";\n',
    "export const key =\n  process.env.ACCOUNT_KEY ||\n  '«value»';\n",
)
# an access key id (made up) with its secret or session token a few lines on
AWS_PAIR_CONTEXTS = (
    "aws credentials {\n  id: AKIAQ3EGRXK5MZT7WJ2P\n  secret: «value»\n}\n",
    "<id>{AKIAQ3EGRXK5MZT7WJ2P}</id>\n<secret>{AQAAABAAA «value»}</secret>\n",
)
AWS_SESSION_CONTEXTS = (
    "id: ASIAQ3EGRXK5MZT7WJ2P\nsecret: x\nsession: «value»\n",
    "ASIAQ3EGRXK5MZT7WJ2P\n«value»\n",
)
# a key that only the service's name names (no prefix, no key word)
VENDOR_NAMED_CONTEXTS = (
    "mixpanel «value» for the staging project\n",
    "[DEBUG] textmagic: '«value»'\n",
    'apiMetrics := "«value»"\n',
    'const client = new HubSpotAPI("«value»");\n',
)
AZURE_SAS_CONTEXTS = (
    "https://acmelogs.blob.core.windows.net/exports/report.csv?sv=2022-11-02&ss=b&srt=o&sp=r"
    "&se=2026-12-31T23:59:59Z&st=2026-11-01T00:00:00Z&spr=https&sig=«value»\n",
    "az storage blob download --blob-url 'https://backups01.blob.core.windows.net/db/"
    "dump.gz?sp=r&st=2026-11-02&se=2026-11-30&spr=https&sv=2022-11-02&sr=b&sig=«value»'\n",
)
SLACK_WEBHOOK_CONTEXTS = (
    "SLACK_WEBHOOK_URL=«value»\n",
    "curl -X POST -H 'Content-type: application/json' --data '{\"text\":\"done\"}' «value»\n",
    "notify:\n  slack: «value»\n",
)
DISCORD_WEBHOOK_CONTEXTS = (
    'WEBHOOK = "«value»"\nrequests.post(WEBHOOK, json={"content": "build failed"})\n',
    "DISCORD_WEBHOOK=«value»\n",
)


def slack_webhook(scheme: bool) -> Make:
    return cat(
        "https://" if scheme else "",
        "hooks.slack.com/services/T",
        pick(UPPER_ALNUM, 8),
        "/B",
        pick(UPPER_ALNUM, 10),
        "/",
        pick(ALNUM, 24),
    )


def discord_webhook(rng: random.Random) -> str:
    host = rng.choice(["discord.com", "discordapp.com"])
    return f"https://{host}/api/webhooks/{rng.randrange(10**17, 10**19)}/{pick(B64URL, 68)(rng)}"


def _k(
    family: str,
    name: str,
    make: Make,
    var: str = "API_TOKEN",
    contexts: tuple[str, ...] | None = None,
) -> SecretKind:
    return SecretKind(family, name, make, var, contexts)


KINDS: tuple[SecretKind, ...] = (
    _k(
        "aws",
        "aws-access-key-id",
        cat(one_of("AKIA", "ASIA"), pick(BASE32, 16)),
        "AWS_ACCESS_KEY_ID",
    ),
    _k(
        "aws",
        "aws-secret-access-key",
        pick(ALNUM + "/+", 40),
        "AWS_SECRET_ACCESS_KEY",
        (
            "[default]\nregion = eu-west-1\naws_secret_access_key = «value»\n",
            "AWS_SECRET_ACCESS_KEY=«value»\n",
            "s3 = boto3.client(\n    's3',\n    aws_secret_access_key='«value»',\n)\n",
            "aws configure set aws_secret_access_key «value» --profile ci\n",
        ),
    ),
    _k("aws", "aws-secret-after-key-id", pick(ALNUM + "/+", 40), "SECRET", AWS_PAIR_CONTEXTS),
    _k(
        "aws",
        "aws-session-token",
        cat("IQoJb3JpZ2luX2Vj", pick(B64, 300)),
        "AWS_SESSION_TOKEN",
        AWS_SESSION_CONTEXTS,
    ),
    *(
        _k("github", f"github-{p}", crc_token(f"{p}_"), "GITHUB_TOKEN")
        for p in ("ghp", "gho", "ghu", "ghs", "ghr")
    ),
    _k(
        "github",
        "github-fine-grained",
        cat("github_pat_11", pick(UPPER_ALNUM, 20), "_", pick(ALNUM, 59)),
        "GITHUB_TOKEN",
    ),
    _k("gitlab", "gitlab-glpat", cat("glpat-", pick(B64URL, 20)), "GITLAB_TOKEN"),
    _k(
        "gitlab",
        "gitlab-glpat-routable",
        cat("glpat-", pick(B64URL, 27), ".01.", pick(LOWER_ALNUM, 9)),
        "GITLAB_TOKEN",
    ),
    *(
        _k("gitlab", f"gitlab-{p.rstrip('-')}", cat(p, pick(B64URL, 20)), "GITLAB_TOKEN")
        for p in ("gldt-", "glrt-", "glsoat-", "glffct-", "glimt-", "glft-")
    ),
    _k("gitlab", "gitlab-glptt", cat("glptt-", pick(HEX, 40)), "GITLAB_TRIGGER_TOKEN"),
    _k(
        "gitlab",
        "gitlab-runner-registration",
        cat("GR1348941", pick(B64URL, 20)),
        "RUNNER_REGISTRATION_TOKEN",
    ),
    _k(
        "gitlab", "gitlab-glcbt", cat("glcbt-", pick(HEX, 2), "_", pick(B64URL, 20)), "CI_JOB_TOKEN"
    ),
    _k("gitlab", "gitlab-glagent", cat("glagent-", pick(B64URL, 50)), "AGENT_TOKEN"),
    _k("gitlab", "gitlab-gloas", cat("gloas-", pick(HEX, 64)), "GITLAB_OAUTH_SECRET"),
    _k(
        "slack",
        "slack-bot",
        cat("xoxb-", digits(10, 13), "-", digits(10, 13), "-", pick(ALNUM, 24)),
        "SLACK_BOT_TOKEN",
    ),
    _k(
        "slack",
        "slack-user",
        cat("xoxp-", digits(10, 13), "-", digits(10, 13), "-", digits(10, 13), "-", pick(HEX, 32)),
        "SLACK_USER_TOKEN",
    ),
    _k(
        "slack",
        "slack-app",
        cat("xapp-1-A", pick(UPPER_ALNUM, 10), "-", digits(13, 13), "-", pick(HEX, 64)),
        "SLACK_APP_TOKEN",
    ),
    _k("slack", "slack-refresh", cat("xoxe-1-", pick(ALNUM, 140)), "SLACK_REFRESH_TOKEN"),
    _k("slack", "slack-config", cat("xoxe.xoxp-1-", pick(ALNUM, 150)), "SLACK_CONFIG_TOKEN"),
    _k(
        "slack",
        "slack-legacy-workspace",
        cat(
            "xoxa-2-", digits(10, 12), "-", digits(10, 12), "-", digits(12, 13), "-", pick(HEX, 64)
        ),
        "SLACK_TOKEN",
    ),
    _k(
        "slack",
        "slack-legacy",
        cat("xoxs-", digits(10, 10), "-", digits(10, 10), "-", digits(10, 10), "-", pick(HEX, 64)),
        "SLACK_TOKEN",
    ),
    _k("slack", "slack-webhook", slack_webhook(True), "SLACK_WEBHOOK_URL", SLACK_WEBHOOK_CONTEXTS),
    _k(
        "slack",
        "slack-webhook-no-scheme",
        slack_webhook(False),
        "SLACK_WEBHOOK_URL",
        SLACK_WEBHOOK_CONTEXTS,
    ),
    _k(
        "stripe",
        "stripe-secret",
        cat("sk_live_", one_of(pick(ALNUM, 24), cat("51", pick(ALNUM, 97)))),
        "STRIPE_SECRET_KEY",
    ),
    _k("stripe", "stripe-restricted", cat("rk_live_", pick(ALNUM, 24)), "STRIPE_KEY"),
    _k("stripe", "stripe-test-secret", cat("sk_test_", pick(ALNUM, 24)), "STRIPE_SECRET_KEY"),
    _k("stripe", "stripe-webhook-secret", cat("whsec_", pick(ALNUM, 32)), "STRIPE_WEBHOOK_SECRET"),
    _k(
        "openai",
        "openai-project",
        cat("sk-proj-", pick(B64URL, 74), "T3BlbkFJ", pick(B64URL, 74)),
        "OPENAI_API_KEY",
    ),
    _k(
        "openai",
        "openai-svcacct",
        cat("sk-svcacct-", pick(B64URL, 58), "T3BlbkFJ", pick(B64URL, 58)),
        "OPENAI_API_KEY",
    ),
    _k(
        "openai",
        "openai-admin",
        cat("sk-admin-", pick(B64URL, 58), "T3BlbkFJ", pick(B64URL, 58)),
        "OPENAI_ADMIN_KEY",
    ),
    _k(
        "openai",
        "openai-legacy",
        cat("sk-", pick(ALNUM, 20), "T3BlbkFJ", pick(ALNUM, 20)),
        "OPENAI_API_KEY",
    ),
    _k(
        "anthropic",
        "anthropic-api",
        cat("sk-ant-api03-", pick(B64URL, 93), "AA"),
        "ANTHROPIC_API_KEY",
    ),
    _k(
        "anthropic",
        "anthropic-admin",
        cat("sk-ant-admin01-", pick(B64URL, 93), "AA"),
        "ANTHROPIC_ADMIN_KEY",
    ),
    _k("huggingface", "huggingface-user", cat("hf_", pick(string.ascii_letters, 34)), "HF_TOKEN"),
    _k(
        "huggingface",
        "huggingface-org",
        cat("api_org_", pick(string.ascii_letters, 34)),
        "HF_TOKEN",
    ),
    _k("google", "google-api-key", cat("AIza", pick(B64URL, 35)), "GOOGLE_API_KEY"),
    _k(
        "azure",
        "azure-client-secret",
        cat(pick(ALNUM + "_~.", 3), pick(string.digits, 1), "Q~", pick(ALNUM + "_~.-", 34)),
        "AZURE_CLIENT_SECRET",
    ),
    _k(
        "azure",
        "azure-storage-account-key",
        azure_storage_key,
        "AZURE_STORAGE_KEY",
        AZURE_STORAGE_CONTEXTS,
    ),
    _k("azure", "azure-sas-signature", azure_sas_signature, "AZURE_SAS", AZURE_SAS_CONTEXTS),
    _k(
        "azure",
        "azure-storage-key-named-apart",
        azure_storage_key,
        "ACCOUNT_KEY",
        AZURE_STORAGE_NAMED_CONTEXTS,
    ),
    _k(
        "azure",
        "azure-registry-password",
        cat(pick(B64, 42), "+ACR", pick(ALNUM, 6)),
        "ACR_PASSWORD",
    ),
    _k("azure", "azure-refresh-token", azure_refresh_token, "REFRESH_TOKEN"),
    _k(
        "azure",
        "azure-apim-git-password",
        cat("git&", digits(12, 12), "&", azure_storage_key),
        "APIM_GIT_PASSWORD",
    ),
    _k("tableau", "tableau-pat", tableau_token, "TABLEAU_PAT"),
    _k("atlassian", "atlassian-dc-pat", atlassian_dc_token, "CONFLUENCE_PAT"),
    _k(
        "vendor-named",
        "vendor-named-key",
        one_of(pick(ALNUM, 32), pick(HEX, 40), pick(LOWER_ALNUM, 26)),
        "KEY",
        VENDOR_NAMED_CONTEXTS,
    ),
    _k(
        "webhook",
        "zapier-webhook",
        cat("https://hooks.zapier.com/hooks/catch/", digits(6, 8), "/", pick(LOWER_ALNUM, 7), "/"),
        "ZAPIER_HOOK",
    ),
    _k(
        "webhook",
        "tines-webhook",
        cat(
            "https://",
            pick(string.ascii_lowercase, 8),
            ".tines.com/webhook/",
            pick(LOWER_ALNUM, 32),
            "/",
            pick(LOWER_ALNUM, 32),
        ),
        "TINES_WEBHOOK",
    ),
    _k(
        "telegram",
        "telegram-bot-token",
        cat(digits(8, 10), ":AA", pick(B64URL, 33)),
        "TELEGRAM_BOT_TOKEN",
    ),
    _k("discord", "discord-webhook", discord_webhook, "DISCORD_WEBHOOK", DISCORD_WEBHOOK_CONTEXTS),
    _k("discord", "discord-bot-token", discord_bot_token, "DISCORD_BOT_TOKEN"),
    *(
        _k("shopify", f"shopify-{p}", cat(f"{p}_", pick(HEX, 32)), "SHOPIFY_ACCESS_TOKEN")
        for p in ("shpat", "shpca", "shppa", "shpss")
    ),
    _k("square", "square-access-token", cat("EAAA", pick(B64URL, 60)), "SQUARE_ACCESS_TOKEN"),
    _k("square", "square-oauth-secret", cat("sq0csp-", pick(B64URL, 43)), "SQUARE_OAUTH_SECRET"),
    _k("square", "square-legacy-token", cat("sq0atp-", pick(B64URL, 22)), "SQUARE_TOKEN"),
    _k("age", "age-secret-key", age_secret_key, "AGE_SECRET_KEY"),
    _k("npm", "npm-token", crc_token("npm_"), "NPM_TOKEN"),
    _k("pypi", "pypi-token", pypi_token, "PYPI_TOKEN"),
    _k("twilio", "twilio-api-key", cat("SK", pick(HEX, 32)), "TWILIO_API_KEY"),
    _k(
        "twilio",
        "twilio-auth-token",
        pick(HEX, 32),
        "TWILIO_AUTH_TOKEN",
        (
            "TWILIO_ACCOUNT_SID=AC0f3c2a9b8e7d6c5b4a392817060504aa\nTWILIO_AUTH_TOKEN=«value»\n",
            "client = Client(account_sid, auth_token='«value»')\n",
        ),
    ),
    _k(
        "sendgrid",
        "sendgrid-api-key",
        cat("SG.", pick(B64URL, 22), ".", pick(B64URL, 43)),
        "SENDGRID_API_KEY",
    ),
    _k("mailgun", "mailgun-api-key", cat("key-", pick(HEX, 32)), "MAILGUN_API_KEY"),
    _k(
        "mailgun",
        "mailgun-signing-key",
        cat(pick(HEX, 32), "-", pick(HEX, 8), "-", pick(HEX, 8)),
        "MAILGUN_WEBHOOK_SIGNING_KEY",
        ("MAILGUN_WEBHOOK_SIGNING_KEY=«value»\n", "mailgun:\n  signing_key: «value»\n"),
    ),
    *(
        _k(
            "digitalocean",
            f"digitalocean-{p}",
            cat(f"{p}_v1_", pick(HEX, 64)),
            "DIGITALOCEAN_TOKEN",
        )
        for p in ("dop", "doo", "dor")
    ),
    _k(
        "databricks",
        "databricks-token",
        cat("dapi", pick(HEX, 32), one_of("", "-2", "-3")),
        "DATABRICKS_TOKEN",
    ),
    _k(
        "atlassian",
        "atlassian-api-token",
        cat("ATATT3xFfGF0", pick(B64URL, 170), "=", pick("0123456789ABCDEF", 8)),
        "JIRA_API_TOKEN",
    ),
    _k("heroku", "heroku-api-key", cat("HRKU-AA", pick(B64URL, 58)), "HEROKU_API_KEY"),
    _k(
        "postman",
        "postman-api-key",
        cat("PMAK-", pick(HEX, 24), "-", pick(HEX, 34)),
        "POSTMAN_API_KEY",
    ),
    *(
        _k("doppler", f"doppler-{p}", cat(f"dp.{p}.", pick(ALNUM, 43)), "DOPPLER_TOKEN")
        for p in ("pt", "st", "ct", "sa", "scim", "audit")
    ),
    _k("vault", "vault-service-token", cat("hvs.CAESI", pick(B64URL, 86)), "VAULT_TOKEN"),
    _k("vault", "vault-batch-token", cat("hvb.AAAAAQ", pick(B64URL, 130)), "VAULT_TOKEN"),
    _k("vault", "vault-legacy-token", cat("s.", pick(ALNUM, 24)), "VAULT_TOKEN"),
    _k("grafana", "grafana-cloud-token", grafana_cloud_token, "GRAFANA_CLOUD_TOKEN"),
    _k(
        "grafana",
        "grafana-service-account",
        cat("glsa_", pick(ALNUM, 32), "_", pick(HEX, 8)),
        "GRAFANA_TOKEN",
    ),
    _k("grafana", "grafana-api-key", grafana_legacy_key, "GRAFANA_API_KEY"),
    _k("newrelic", "newrelic-user-key", cat("NRAK-", pick(UPPER_ALNUM, 27)), "NEW_RELIC_API_KEY"),
    _k("newrelic", "newrelic-insert-key", cat("NRII-", pick(B64URL, 32)), "NEW_RELIC_INSERT_KEY"),
    _k("newrelic", "newrelic-license-key", cat(pick(HEX, 36), "NRAL"), "NEW_RELIC_LICENSE_KEY"),
    _k(
        "datadog",
        "datadog-api-key",
        pick(HEX, 32),
        "DD_API_KEY",
        (
            "DD_API_KEY=«value»\nDD_SITE=datadoghq.eu\n",
            "datadog:\n  api_key: «value»\n",
            "docker run -d -e DD_API_KEY=«value» gcr.io/datadoghq/agent:7\n",
        ),
    ),
    _k(
        "datadog",
        "datadog-app-key",
        pick(HEX, 40),
        "DD_APP_KEY",
        ("DD_APP_KEY=«value»\n", 'options = {"api_key": api_key, "app_key": "«value»"}\n'),
    ),
    _k("linear", "linear-api-key", cat("lin_api_", pick(ALNUM, 40)), "LINEAR_API_KEY"),
    _k("notion", "notion-secret", cat("secret_", pick(ALNUM, 43)), "NOTION_TOKEN"),
    _k(
        "notion",
        "notion-ntn",
        cat("ntn_", pick(string.digits, 11), pick(ALNUM, 35)),
        "NOTION_TOKEN",
    ),
    _k("figma", "figma-pat", cat("figd_", pick(B64URL, 40)), "FIGMA_TOKEN"),
    # the long tail, from the rule names in the public scanners; formats as each vendor documents
    _k("sentry", "sentry-user-token", cat("sntryu_", pick(HEX, 64)), "SENTRY_AUTH_TOKEN"),
    _k(
        "cloudflare",
        "cloudflare-origin-ca-key",
        cat("v1.0-", pick(HEX, 24), "-", pick(HEX, 146)),
        "CF_ORIGIN_CA_KEY",
    ),
    _k("pulumi", "pulumi-token", cat("pul-", pick(HEX, 40)), "PULUMI_ACCESS_TOKEN"),
    _k(
        "terraform",
        "terraform-cloud-token",
        cat(pick(ALNUM, 14), ".atlasv1.", pick(B64URL, 67)),
        "TFE_TOKEN",
    ),
    _k("flyio", "flyio-token", cat("fo1_", pick(B64URL, 43)), "FLY_API_TOKEN"),
    _k("supabase", "supabase-token", cat("sbp_", pick(HEX, 40)), "SUPABASE_ACCESS_TOKEN"),
    _k(
        "planetscale",
        "planetscale-token",
        cat("pscale_tkn_", pick(B64URL, 43)),
        "PLANETSCALE_TOKEN",
    ),
    _k("replicate", "replicate-token", cat("r8_", pick(ALNUM, 37)), "REPLICATE_API_TOKEN"),
    _k("groq", "groq-api-key", cat("gsk_", pick(ALNUM, 52)), "GROQ_API_KEY"),
    _k("perplexity", "perplexity-api-key", cat("pplx-", pick(ALNUM, 48)), "PERPLEXITY_API_KEY"),
    _k("xai", "xai-api-key", cat("xai-", pick(ALNUM, 80)), "XAI_API_KEY"),
    _k(
        "bitbucket",
        "bitbucket-app-password",
        cat("ATBB", pick(ALNUM, 32), pick("0123456789ABCDEF", 8)),
        "BITBUCKET_APP_PASSWORD",
    ),
    _k("contentful", "contentful-pat", cat("CFPAT-", pick(B64URL, 43)), "CONTENTFUL_TOKEN"),
    _k(
        "dynatrace",
        "dynatrace-token",
        cat("dt0c01.", pick(UPPER_ALNUM, 24), ".", pick(UPPER_ALNUM, 64)),
        "DT_API_TOKEN",
    ),
    _k("rubygems", "rubygems-api-key", cat("rubygems_", pick(HEX, 48)), "GEM_HOST_API_KEY"),
    _k("nuget", "nuget-api-key", cat("oy2", pick(LOWER_ALNUM, 43)), "NUGET_API_KEY"),
    _k("prefect", "prefect-api-key", cat("pnu_", pick(ALNUM, 36)), "PREFECT_API_KEY"),
    _k("readme", "readme-api-key", cat("rdme_", pick(LOWER_ALNUM, 70)), "README_API_KEY"),
    _k(
        "brevo",
        "brevo-api-key",
        cat("xkeysib-", pick(HEX, 64), "-", pick(ALNUM, 16)),
        "BREVO_API_KEY",
    ),
    _k("typeform", "typeform-pat", cat("tfp_", pick(B64URL, 59)), "TYPEFORM_TOKEN"),
    _k("shippo", "shippo-live-token", cat("shippo_live_", pick(HEX, 40)), "SHIPPO_API_TOKEN"),
    _k("easypost", "easypost-api-key", cat("EZAK", pick(ALNUM, 54)), "EASYPOST_API_KEY"),
    _k(
        "flutterwave",
        "flutterwave-secret",
        cat("FLWSECK_TEST-", pick(HEX, 32), "-X"),
        "FLW_SECRET_KEY",
    ),
    _k("duffel", "duffel-live-token", cat("duffel_live_", pick(B64URL, 43)), "DUFFEL_ACCESS_TOKEN"),
    _k("adafruit", "adafruit-io-key", cat("aio_", pick(ALNUM, 28)), "ADAFRUIT_IO_KEY"),
    _k("clojars", "clojars-token", cat("CLOJARS_", pick(LOWER_ALNUM, 60)), "CLOJARS_TOKEN"),
    _k("mapbox", "mapbox-secret-token", mapbox_secret, "MAPBOX_SECRET_TOKEN"),
    # private keys, JWTs, and credentials that only their context tells apart
    _k("private-key", "pem-ec", pem_ec_key, "KEY", KEY_CONTEXTS),
    _k("private-key", "pem-rsa", pem_rsa_key, "KEY", KEY_CONTEXTS),
    _k("private-key", "openssh", openssh_key, "KEY", KEY_CONTEXTS),
    _k("private-key", "putty", putty_key, "KEY", KEY_CONTEXTS),
    _k("private-key", "gcp-service-account-json", pem_ec_key, "KEY", GCP_CONTEXTS),
    _k("jwt", "jwt-signed", jwt_signed, "ID_TOKEN"),
    _k("jwt", "jwt-unsecured", jwt_unsecured, "ID_TOKEN"),
    _k("url-credentials", "url-password", url_credentials, "app", URL_CONTEXTS),
    _k("auth-header", "bearer-unknown-issuer", bearer_token, "TOKEN", BEARER_CONTEXTS),
    _k("auth-header", "basic-auth", basic_credentials, "TOKEN", BASIC_CONTEXTS),
    _k("password", "human-password", human_password, "PASSWORD", PASSWORD_CONTEXTS),
    _k("keyed-secret", "hex-32", pick(HEX, 32), "SECRET", HEX_SECRET_CONTEXTS),
    _k("keyed-secret", "hex-40", pick(HEX, 40), "SECRET", HEX_SECRET_CONTEXTS),
    _k("keyed-secret", "hex-64", pick(HEX, 64), "SECRET", HEX_SECRET_CONTEXTS),
    _k(
        "keyed-secret",
        "high-entropy",
        one_of(pick(ALNUM, 32), pick(B64, 40), pick(B64URL, 28)),
        "SECRET",
        GENERIC_CONTEXTS,
    ),
)
