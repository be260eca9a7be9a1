"""Personal data made by Faker, not by us: people of ten locales (names, street addresses,
phone numbers, dates of birth, national ids, passports, IBANs, emails, IP addresses) placed in
prompts as people paste them: forms, JSON records, CSV rows, emails, chat sentences in the
locale's language, and lists with no label at all. Each value is labelled with its span.

Our own generator (personal_formats.py) shares the detectors' assumptions; Faker's values and
formats were written by others, so they test those assumptions. Faker does not check what it
makes: its phone numbers are random digits in the locale's layout, its Aadhaar numbers lack
the Verhoeff digit, its IPv6 addresses are mostly outside 2000::/3, and en_GB's NINO is the
ZZ placeholder. Nobody has such a value, so one that libphonenumber, the checksum or
ipaddress rejects is drawn again (counted in `rejected`); ja_JP's street is its whole
address (its `street_address` is "177 阿部 Street").

Also a clean set with no personal data: prose of each locale with Faker's companies, cities,
jobs and products after greetings and sign-offs ("Hi team", "Thanks, Müller GmbH").
"""

from __future__ import annotations

import ipaddress
import json
import random
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from functools import cache

import phonenumbers
from faker import Faker
from stdnum.in_ import aadhaar

LOCALES = {  # Faker locale: (phone region, language)
    "en_US": ("US", "en"),
    "en_GB": ("GB", "en"),
    "en_IN": ("IN", "en"),
    "de_DE": ("DE", "de"),
    "fr_FR": ("FR", "fr"),
    "es_ES": ("ES", "es"),
    "pt_BR": ("BR", "pt"),
    "it_IT": ("IT", "it"),
    "nl_NL": ("NL", "nl"),
    "ja_JP": ("JP", "ja"),
}
KINDS = ("name", "street-address", "phone", "date-of-birth", "national-id", "passport", "iban",
         "email", "ip-address")  # fmt: skip

REJECTED: Counter = Counter()  # values Faker made that no one can have, by kind


@dataclass(frozen=True, slots=True)
class Piece:
    text: str
    kind: str | None = None  # a labelled value, or None for the words around it


# -- the values ---------------------------------------------------------------------------------


def _valid_phone(f: Faker, region: str) -> str:
    for _ in range(100):
        value = f.phone_number()
        try:
            if phonenumbers.is_valid_number(phonenumbers.parse(value, region)):
                return value
        except phonenumbers.NumberParseException:
            pass
        REJECTED["phone"] += 1
    raise RuntimeError(f"no valid {region} phone from Faker")  # pragma: no cover


def _national_id(f: Faker, locale: str) -> tuple[str, str] | None:
    """(the id, its name in the locale) where Faker makes a real one; en_GB's `ssn` is the
    ZZ placeholder NINO that HMRC never allocates, de_DE and ja_JP have none."""
    if locale == "en_US":
        return f.ssn(), "SSN"
    if locale == "fr_FR":
        return f.ssn(), "numéro de sécurité sociale"
    if locale == "es_ES":
        return (f.nif(), "DNI") if f.random.random() < 0.7 else (f.nie(), "NIE")
    if locale == "pt_BR":
        return (f.cpf() if f.random.random() < 0.7 else f.ssn()), "CPF"
    if locale == "it_IT":
        return f.ssn(), "codice fiscale"
    if locale == "nl_NL":
        return f.ssn(), "BSN"
    if locale == "en_IN":
        for _ in range(500):
            value = f.aadhaar_id()
            if aadhaar.is_valid(value):
                return (value if f.random.random() < 0.5 else
                        f"{value[:4]} {value[4:8]} {value[8:]}"), "Aadhaar"  # fmt: skip
            REJECTED["national-id"] += 1
    return None


_UNICAST = ipaddress.ip_network("2000::/3")  # the only IPv6 space IANA gives out


def _ip(f: Faker) -> str:
    """A public address: Faker's IPv6 addresses are random 128 bits, mostly in space never
    allocated to anyone."""
    while True:
        # (Faker's ipv4_public() takes 25 ms a call: any address, then ipaddress's judgement)
        value = ipaddress.ip_address(f.ipv4() if f.random.random() < 0.7 else f.ipv6())
        if value.is_global and (value.version == 4 or value in _UNICAST):
            return str(value)
        REJECTED["ip-address"] += 1


_MONTHS_EN = ("January", "February", "March", "April", "May", "June", "July", "August",
              "September", "October", "November", "December")  # fmt: skip


def _month(f: Faker, month: int) -> str:
    """The month's name as Faker's date provider of the locale writes it."""
    for provider in f.get_providers():
        names = getattr(provider, "MONTH_NAMES", None)
        if names and "date_time" in type(provider).__module__:
            return names[f"{month:02d}"]
    return _MONTHS_EN[month - 1]  # pragma: no cover


def _date_of_birth(f: Faker, locale: str, lang: str) -> str:
    """A birth date as the locale writes it, numeric or with the month's name."""
    d: date = f.date_of_birth(minimum_age=18, maximum_age=90)
    y, m, day = d.year, d.month, d.day
    month = _month(f, m)
    ways = {
        "en_US": [f"{m:02d}/{day:02d}/{y}", f"{m}/{day}/{y}", f"{month} {day}, {y}"],
        "en_GB": [f"{day:02d}/{m:02d}/{y}", f"{day} {month} {y}", f"{day}th of {month} {y}"],
        "en_IN": [f"{day:02d}/{m:02d}/{y}", f"{day:02d}-{m:02d}-{y}", f"{day} {month} {y}"],
        "de": [f"{day:02d}.{m:02d}.{y}", f"{day}.{m}.{y}", f"{day}. {month} {y}"],
        "fr": [f"{day:02d}/{m:02d}/{y}", f"{day} {month.lower()} {y}"],
        "es": [f"{day:02d}/{m:02d}/{y}", f"{day} de {month} de {y}"],
        "pt": [f"{day:02d}/{m:02d}/{y}", f"{day} de {month} de {y}"],
        "it": [f"{day:02d}/{m:02d}/{y}", f"{day} {month} {y}"],
        "nl": [f"{day:02d}-{m:02d}-{y}", f"{day} {month} {y}"],
        "ja": [f"{y}年{m}月{day}日", f"{y}/{m:02d}/{day:02d}"],
    }
    options = ways.get(locale) or ways[lang]
    return f.random.choice([*options, d.isoformat()])


@dataclass(frozen=True, slots=True)
class Person:
    first: str
    name: str
    street: str
    address: str  # the street and the town, on one line
    phone: str
    dob: str
    national_id: tuple[str, str] | None
    passport: str
    iban: str
    email: str
    ip: str


def person(f: Faker, locale: str) -> Person:
    region, lang = LOCALES[locale]
    address = ", ".join(line.strip() for line in f.address().splitlines() if line.strip())
    # ja_JP's street_address is "177 阿部 Street", its address a real Japanese one
    street = address if locale == "ja_JP" else ", ".join(f.street_address().splitlines())
    return Person(
        first=f.first_name(),
        name=f.name(),
        street=street,
        address=address,
        phone=_valid_phone(f, region),
        dob=_date_of_birth(f, locale, lang),
        national_id=_national_id(f, locale),
        passport=f.passport_number(),
        iban=f.iban(),
        email=f.email(),
        ip=_ip(f),
    )


# -- how each language names them ---------------------------------------------------------------

# field: labels of a form, in the language; "id" is the national id's own name
LABELS: dict[str, dict[str, tuple[str, ...]]] = {
    "en": {"name": ("Name", "Full name", "Customer"), "street-address": ("Address", "Home address",
           "Street"), "phone": ("Phone", "Mobile", "Tel"), "date-of-birth": ("Date of birth",
           "DOB", "Birthday"), "passport": ("Passport number", "Passport No."), "iban": ("IBAN",
           "Bank account"), "email": ("Email", "E-mail"), "ip-address": ("IP address", "IP")},
    "de": {"name": ("Name", "Vor- und Nachname"), "street-address": ("Anschrift", "Adresse",
           "Straße"), "phone": ("Telefon", "Handy", "Tel."), "date-of-birth": ("Geburtsdatum",
           "Geboren am"), "passport": ("Reisepassnummer", "Reisepass-Nr."), "iban": ("IBAN",
           "Bankverbindung"), "email": ("E-Mail",), "ip-address": ("IP-Adresse",)},
    "fr": {"name": ("Nom", "Nom complet"), "street-address": ("Adresse", "Domicile"),
           "phone": ("Téléphone", "Portable", "Tél."), "date-of-birth": ("Date de naissance",
           "Né le"), "passport": ("Numéro de passeport", "N° passeport"), "iban": ("IBAN", "RIB"),
           "email": ("E-mail", "Courriel"), "ip-address": ("Adresse IP",)},
    "es": {"name": ("Nombre", "Nombre completo"), "street-address": ("Dirección", "Domicilio"),
           "phone": ("Teléfono", "Móvil"), "date-of-birth": ("Fecha de nacimiento",),
           "passport": ("Número de pasaporte", "Pasaporte"), "iban": ("IBAN", "Cuenta"),
           "email": ("Correo electrónico", "Email"), "ip-address": ("Dirección IP",)},
    "pt": {"name": ("Nome", "Nome completo"), "street-address": ("Endereço", "Logradouro"),
           "phone": ("Telefone", "Celular"), "date-of-birth": ("Data de nascimento",),
           "passport": ("Número do passaporte", "Passaporte"), "iban": ("IBAN", "Conta"),
           "email": ("E-mail",), "ip-address": ("Endereço IP",)},
    "it": {"name": ("Nome", "Nome e cognome"), "street-address": ("Indirizzo", "Residenza"),
           "phone": ("Telefono", "Cellulare"), "date-of-birth": ("Data di nascita",),
           "passport": ("Numero di passaporto", "Passaporto"), "iban": ("IBAN", "Conto"),
           "email": ("Email", "E-mail"), "ip-address": ("Indirizzo IP",)},
    "nl": {"name": ("Naam", "Volledige naam"), "street-address": ("Adres", "Woonadres"),
           "phone": ("Telefoon", "Mobiel"), "date-of-birth": ("Geboortedatum",),
           "passport": ("Paspoortnummer", "Paspoort"), "iban": ("IBAN", "Rekeningnummer"),
           "email": ("E-mail",), "ip-address": ("IP-adres",)},
    "ja": {"name": ("氏名", "名前"), "street-address": ("住所",), "phone": ("電話番号", "携帯"),
           "date-of-birth": ("生年月日",), "passport": ("パスポート番号", "旅券番号"),
           "iban": ("IBAN", "口座"), "email": ("メール", "メールアドレス"),
           "ip-address": ("IPアドレス",)},
}  # fmt: skip

# field: how a person says it in a chat message ({} is the value)
SAYINGS: dict[str, dict[str, tuple[str, ...]]] = {
    "en": {"name": ("My name is {}.", "This is {} from accounts."),
           "street-address": ("Please ship it to {}.", "I live at {}."),
           "phone": ("Call me on {}.", "My number is {}."),
           "date-of-birth": ("I was born on {}.", "My date of birth is {}."),
           "national-id": ("My {label} is {}.",), "passport": ("My passport number is {}.",),
           "iban": ("Please refund it to {}.",), "email": ("Email me at {}.",),
           "ip-address": ("My IP is {} and I am blocked.",)},
    "de": {"name": ("Ich heiße {}.", "Mein Name ist {}."),
           "street-address": ("Bitte liefern Sie an {}.", "Ich wohne in der {}."),
           "phone": ("Rufen Sie mich unter {} an.", "Meine Handynummer ist {}."),
           "date-of-birth": ("Ich bin am {} geboren.", "Geburtsdatum {}."),
           "passport": ("Meine Reisepassnummer ist {}.",),
           "iban": ("Bitte überweisen Sie auf {}.",), "email": ("Schreiben Sie mir an {}.",),
           "ip-address": ("Meine IP-Adresse ist {}.",)},
    "fr": {"name": ("Je m'appelle {}.", "Mon nom est {}."),
           "street-address": ("Livrez au {}.", "J'habite au {}."),
           "phone": ("Appelez-moi au {}.", "Mon portable : {}."),
           "date-of-birth": ("Je suis né le {}.", "Ma date de naissance est le {}."),
           "national-id": ("Mon {label} est {}.",),
           "passport": ("Mon numéro de passeport est {}.",),
           "iban": ("Remboursez-moi sur {}.",), "email": ("Écrivez-moi à {}.",),
           "ip-address": ("Mon adresse IP est {}.",)},
    "es": {"name": ("Me llamo {}.", "Mi nombre es {}."),
           "street-address": ("Envíelo a {}.", "Vivo en {}."),
           "phone": ("Llámame al {}.", "Mi móvil es {}."),
           "date-of-birth": ("Nací el {}.", "Mi fecha de nacimiento es {}."),
           "national-id": ("Mi {label} es {}.",),
           "passport": ("Mi número de pasaporte es {}.",),
           "iban": ("Devuélvanlo a la cuenta {}.",), "email": ("Escríbeme a {}.",),
           "ip-address": ("Mi dirección IP es {}.",)},
    "pt": {"name": ("Meu nome é {}.", "Eu me chamo {}."),
           "street-address": ("Envie para {}.", "Moro na {}."),
           "phone": ("Me ligue no {}.", "Meu celular é {}."),
           "date-of-birth": ("Nasci em {}.", "Minha data de nascimento é {}."),
           "national-id": ("Meu {label} é {}.",),
           "passport": ("Meu passaporte é {}.",),
           "iban": ("Devolva para a conta {}.",), "email": ("Me escreva em {}.",),
           "ip-address": ("Meu IP é {}.",)},
    "it": {"name": ("Mi chiamo {}.", "Il mio nome è {}."),
           "street-address": ("Spedite a {}.", "Abito in {}."),
           "phone": ("Chiamatemi al {}.", "Il mio cellulare è {}."),
           "date-of-birth": ("Sono nato il {}.", "La mia data di nascita è {}."),
           "national-id": ("Il mio {label} è {}.",),
           "passport": ("Il mio numero di passaporto è {}.",),
           "iban": ("Rimborsate sul conto {}.",), "email": ("Scrivetemi a {}.",),
           "ip-address": ("Il mio indirizzo IP è {}.",)},
    "nl": {"name": ("Mijn naam is {}.", "Ik heet {}."),
           "street-address": ("Stuur het naar {}.", "Ik woon op {}."),
           "phone": ("Bel me op {}.", "Mijn mobiele nummer is {}."),
           "date-of-birth": ("Ik ben geboren op {}.", "Mijn geboortedatum is {}."),
           "national-id": ("Mijn {label} is {}.",),
           "passport": ("Mijn paspoortnummer is {}.",),
           "iban": ("Stort het terug op {}.",), "email": ("Mail me op {}.",),
           "ip-address": ("Mijn IP-adres is {}.",)},
    "ja": {"name": ("私の名前は{}です。", "{}と申します。"),
           "street-address": ("住所は{}です。", "{}に送ってください。"),
           "phone": ("電話番号は{}です。",), "date-of-birth": ("生年月日は{}です。",),
           "passport": ("パスポート番号は{}です。",), "iban": ("口座は{}です。",),
           "email": ("メールは{}までお願いします。",), "ip-address": ("IPアドレスは{}です。",)},
}  # fmt: skip

GREETINGS = {"en": ("Hi {},", "Dear {},", "Hello {},"), "de": ("Hallo {},", "Liebe {},"),
             "fr": ("Bonjour {},", "Cher {},"), "es": ("Hola {},", "Estimado {},"),
             "pt": ("Olá {},", "Prezado {},"), "it": ("Ciao {},", "Gentile {},"),
             "nl": ("Hallo {},", "Beste {},"), "ja": ("{}様",)}  # fmt: skip
SIGN_OFFS = {"en": ("Best regards,", "Thanks,", "Cheers,"), "de": ("Viele Grüße", "Beste Grüße,"),
             "fr": ("Cordialement,", "Bien à vous,"), "es": ("Saludos,", "Un saludo,"),
             "pt": ("Atenciosamente,", "Abraços,"), "it": ("Cordiali saluti,", "Saluti,"),
             "nl": ("Met vriendelijke groet,", "Groeten,"),
             "ja": ("よろしくお願いします。",)}  # fmt: skip
ASKS = {"en": "Can you help me with this?", "de": "Können Sie mir dabei helfen?",
        "fr": "Pouvez-vous m'aider ?", "es": "¿Me pueden ayudar?", "pt": "Podem me ajudar?",
        "it": "Potete aiutarmi?", "nl": "Kunnen jullie me helpen?",
        "ja": "よろしくお願いします。"}  # fmt: skip
JSON_KEYS = {"name": ("name", "full_name", "customer_name"), "street-address": ("address",
             "street", "address_line1"), "phone": ("phone", "mobile", "phone_number"),
             "date-of-birth": ("dob", "birth_date", "date_of_birth"), "national-id": ("{id}",),
             "passport": ("passport", "passport_no"), "iban": ("iban",), "email": ("email",),
             "ip-address": ("ip", "client_ip")}  # fmt: skip


def _fields(p: Person) -> dict[str, str]:
    fields = {"name": p.name, "street-address": p.street, "phone": p.phone,
              "date-of-birth": p.dob, "passport": p.passport, "iban": p.iban,
              "email": p.email, "ip-address": p.ip}  # fmt: skip
    if p.national_id:
        fields["national-id"] = p.national_id[0]
    return fields


def _choose(rng: random.Random, p: Person, low: int, high: int) -> list[str]:
    """Some of a person's fields, in their usual order; a name almost always."""
    fields = list(_fields(p))
    chosen = set(rng.sample(fields, rng.randint(low, min(high, len(fields)))))
    if rng.random() < 0.8:
        chosen.add("name")
    return [k for k in fields if k in chosen]


def _label(rng: random.Random, lang: str, p: Person, kind: str) -> str:
    if kind == "national-id":
        assert p.national_id is not None
        return p.national_id[1]
    return rng.choice(LABELS[lang][kind])


# -- the prompts --------------------------------------------------------------------------------

Template = Callable[[random.Random, Faker, str, str], list[Piece]]


def form(rng: random.Random, f: Faker, locale: str, lang: str) -> list[Piece]:
    """A form or record pasted as `Label: value` lines."""
    p = person(f, locale)
    pieces = [Piece(rng.choice(["", f"{ASKS[lang]}\n\n", "Fill in the letter with this:\n"]))]
    for kind in _choose(rng, p, 3, 6):
        sep = rng.choice([": ", ":\t", " - "]) if lang != "ja" else rng.choice(["：", ": "])
        pieces += [Piece(_label(rng, lang, p, kind) + sep), Piece(_fields(p)[kind], kind),
                   Piece("\n")]  # fmt: skip
    return pieces


def json_record(rng: random.Random, f: Faker, locale: str, lang: str) -> list[Piece]:
    p = person(f, locale)
    pieces = [Piece(rng.choice(["", "Why does this record fail validation?\n"]) + "{")]
    for i, kind in enumerate(_choose(rng, p, 3, 6)):
        idname = (p.national_id[1] if p.national_id else "").lower().replace(" ", "_")
        key = rng.choice(JSON_KEYS[kind]).format(id=idname)
        value = json.dumps(_fields(p)[kind], ensure_ascii=False)
        pieces += [Piece(("" if i == 0 else ", ") + f'"{key}": "'),
                   Piece(value[1:-1], kind), Piece('"')]  # fmt: skip
    return [*pieces, Piece("}\n")]


def csv_rows(rng: random.Random, f: Faker, locale: str, lang: str) -> list[Piece]:
    """A CSV export with a header and a few rows, as pasted for a cleanup."""
    people = [person(f, locale) for _ in range(rng.randint(2, 3))]
    kinds = [k for k in _choose(rng, people[0], 2, 4)
             if all(k in _fields(q) for q in people)]  # fmt: skip
    idname = (people[0].national_id[1] if people[0].national_id else "").lower()
    header = ",".join(rng.choice(JSON_KEYS[k]).format(id=idname.replace(" ", "_")) for k in kinds)
    pieces = [Piece(f"Clean up this export:\n\nid,{header}\n")]
    for row, q in enumerate(people):
        pieces.append(Piece(f"{1000 + row}"))
        for k in kinds:
            value = _fields(q)[k]
            quoted = "," in value or '"' in value
            pieces += [Piece(',"' if quoted else ","), Piece(value.replace('"', '""'), k),
                       Piece('"' if quoted else "")]  # fmt: skip
        pieces.append(Piece("\n"))
    return pieces


def email(rng: random.Random, f: Faker, locale: str, lang: str) -> list[Piece]:
    """An email with a greeting, sentences and a signature: names with weak labels only."""
    p = person(f, locale)
    greeting = rng.choice(GREETINGS[lang])
    a, b = greeting.split("{}")
    pieces = [Piece("Make this email more polite:\n\n" + a), Piece(p.first, "name"),
              Piece(b + "\n\n")]  # fmt: skip
    for kind in _choose(rng, p, 1, 3):
        if kind == "name":
            continue
        pieces += [*_saying(rng, lang, p, kind), Piece(" ")]
    pieces += [Piece(f"\n\n{rng.choice(SIGN_OFFS[lang])}\n"), Piece(f.name(), "name"), Piece("\n")]
    return pieces


def _saying(rng: random.Random, lang: str, p: Person, kind: str) -> list[Piece]:
    sayings = SAYINGS[lang].get(kind) or SAYINGS["en"][kind]
    label = p.national_id[1] if kind == "national-id" and p.national_id else ""
    a, b = rng.choice(sayings).replace("{label}", label).split("{}")
    return [Piece(a), Piece(_fields(p)[kind], kind), Piece(b)]


def chat(rng: random.Random, f: Faker, locale: str, lang: str) -> list[Piece]:
    """A chat message in the locale's language, each value said in a sentence."""
    p = person(f, locale)
    pieces: list[Piece] = []
    for kind in _choose(rng, p, 2, 4):
        pieces += [*_saying(rng, lang, p, kind), Piece(" ")]
    return [*pieces, Piece(ASKS[lang])]


def unlabelled(rng: random.Random, f: Faker, locale: str, lang: str) -> list[Piece]:
    """Values with nothing saying what they are: a shipping label, a line of a list."""
    p = person(f, locale)
    if rng.random() < 0.5:
        pieces = [Piece("Format this as a shipping label:\n\n"), Piece(p.name, "name"),
                  Piece("\n"), Piece(p.address, "street-address"), Piece("\n")]  # fmt: skip
        if rng.random() < 0.5:
            pieces += [Piece(p.phone, "phone"), Piece("\n")]
        return pieces
    kinds = _choose(rng, p, 2, 4)
    pieces = [Piece("Sort these by date:\n")]
    for i, kind in enumerate(kinds):
        pieces += [Piece("" if i == 0 else ", "), Piece(_fields(p)[kind], kind)]
    return [*pieces, Piece("\n")]


TEMPLATES: dict[str, Template] = {
    "form": form, "json": json_record, "csv": csv_rows, "email": email, "chat": chat,
    "unlabelled": unlabelled,
}  # fmt: skip


# -- clean prose --------------------------------------------------------------------------------

_CLEAN_LINES = {
    "en": ("Hi team, {company} sent the new quote for the {city} office.",
           "Dear {company} support, the {product} stopped syncing after the update.",
           "Thanks, {company}", "Best regards,\nThe {city} Operations Team",
           "We are hiring a {job} in {city}; the role reports to the Head of Sales.",
           "Our slogan for Q3: {phrase}.", "The meeting moved to Room 12 on the 3rd floor."),
    "de": ("Hallo zusammen, {company} hat das Angebot für {city} geschickt.",
           "Viele Grüße\n{company}", "Wir suchen eine*n {job} in {city}.",
           "Sehr geehrte Damen und Herren, die Lieferung an {company} ist unterwegs."),
    "fr": ("Bonjour à tous, {company} a envoyé le devis pour {city}.",
           "Cordialement,\nL'équipe {company}", "Nous recrutons un {job} à {city}."),
    "es": ("Hola equipo, {company} envió la oferta para {city}.", "Saludos,\n{company}",
           "Buscamos un {job} en {city}."),
    "pt": ("Olá pessoal, a {company} mandou o orçamento de {city}.",
           "Atenciosamente,\nEquipe {company}", "Estamos contratando {job} em {city}."),
    "it": ("Ciao a tutti, {company} ha inviato il preventivo per {city}.",
           "Cordiali saluti,\n{company}", "Cerchiamo un {job} a {city}."),
    "nl": ("Hallo allemaal, {company} heeft de offerte voor {city} gestuurd.",
           "Met vriendelijke groet,\n{company}", "Wij zoeken een {job} in {city}."),
    "ja": ("{company}から{city}支店の見積もりが届きました。", "{job}を募集しています。"),
}  # fmt: skip


def clean_prose(rng: random.Random, f: Faker, locale: str, lang: str) -> str:
    """A few lines about companies, places and jobs: no one's personal data."""
    lines = _CLEAN_LINES[lang] + _CLEAN_LINES["en"][-2:]
    chosen = rng.sample(lines, min(len(lines), rng.randint(2, 4)))

    def fill(line: str) -> str:
        return line.format(company=f.company(), city=f.city(), job=f.job(),
                           product=f.word().title() + " " + rng.choice(["Pro", "Cloud", "Hub"]),
                           phrase=f.catch_phrase() if lang == "en" else f.word())  # fmt: skip

    return "\n".join(fill(line) for line in chosen) + "\n"


# -- the corpus ---------------------------------------------------------------------------------


def assemble(pieces: list[Piece]) -> tuple[str, list[tuple[int, int, str]]]:
    """The text and the (start, end, kind) of each labelled value in it."""
    text, spans = "", []
    for piece in pieces:
        if piece.kind is not None and piece.text:
            spans.append((len(text), len(text) + len(piece.text), piece.kind))
        text += piece.text
    return text, spans


@cache
def _faker(locale: str) -> Faker:
    """One generator per locale (making one takes a third of a second); every prompt seeds it."""
    return Faker(locale)


def samples(
    seed: int, per_locale: int, clean_per_locale: int, locales: tuple[str, ...] = tuple(LOCALES)
) -> list[dict]:
    """`per_locale` prompts with personal data in each locale, the templates in turn, and
    `clean_per_locale` prompts without; one Faker seed per prompt, so a change to one
    template leaves the others' values alone."""
    out = []
    for locale in locales:
        lang = LOCALES[locale][1]
        f = _faker(locale)
        names = list(TEMPLATES)
        for i in range(per_locale):
            template = names[i % len(names)]
            f.seed_instance(f"{seed}:{locale}:{i}")
            rng = random.Random(f"{seed}:{locale}:{i}")
            text, spans = assemble(TEMPLATES[template](rng, f, locale, lang))
            out.append({"id": f"faker-{locale}-{i:04d}", "group": "pii", "template": template,
                        "locale": locale, "text": text, "spans": spans})  # fmt: skip
        for i in range(clean_per_locale):
            f.seed_instance(f"{seed}:{locale}:clean:{i}")
            rng = random.Random(f"{seed}:{locale}:clean:{i}")
            out.append({"id": f"faker-clean-{locale}-{i:04d}", "group": "clean",
                        "template": "prose", "locale": locale,
                        "text": clean_prose(rng, f, locale, lang), "spans": []})  # fmt: skip
    return out
