"""Personal data by its published formats, per locale: phone numbers that libphonenumber
accepts, cards of every brand (prefixes, lengths, Luhn), IBANs (mod 97), national IDs with
their check digits, and names, addresses, dates of birth and passports as they are written."""

from __future__ import annotations

import ipaddress
import random
import string
from collections.abc import Callable
from dataclasses import dataclass

import phonenumbers

from corpus.checksums import (
    DNI_LETTERS,
    cpf_digits,
    iban_check_digits,
    luhn_digit,
    nir_key,
    steuer_id_digit,
    verhoeff_digit,
)

Make = Callable[[random.Random], str]


@dataclass(frozen=True, slots=True)
class PersonalKind:
    family: str
    name: str
    locale: str | None
    make: Make
    labels: tuple[str, ...]  # how people name it in text ("phone", "Tel.")
    key: str  # the field name in JSON, CSV and logs


def num(rng: random.Random, n: int) -> str:
    return "".join(rng.choice(string.digits) for _ in range(n))


# -- phones ------------------------------------------------------------------------------------

PHONE_LOCALES = {"US": "US", "UK": "GB", "DE": "DE", "FR": "FR", "IN": "IN", "BR": "BR", "JP": "JP"}
_PHONE_FORMATS = {
    "international": phonenumbers.PhoneNumberFormat.INTERNATIONAL,
    "national": phonenumbers.PhoneNumberFormat.NATIONAL,
    "e164": phonenumbers.PhoneNumberFormat.E164,
}


def phone(region: str, style: str) -> Make:
    """An example number of the region, its subscriber digits replaced until it is valid."""

    def make(rng: random.Random) -> str:
        kind = rng.choice(
            [phonenumbers.PhoneNumberType.MOBILE, phonenumbers.PhoneNumberType.FIXED_LINE]
        )
        example = phonenumbers.example_number_for_type(region, kind)
        national = str(example.national_number)
        keep = 1 if region == "US" else 2  # the rest random: area codes and subscribers vary
        for _ in range(5000):
            candidate = national[:keep] + num(rng, len(national) - keep)
            number = phonenumbers.parse("+" + str(example.country_code) + candidate)
            if (
                phonenumbers.is_valid_number(number)
                and phonenumbers.region_code_for_number(number) == region  # not Canada's
                and candidate != national
            ):
                return phonenumbers.format_number(number, _PHONE_FORMATS[style])
        raise RuntimeError(f"no valid {region} number")  # pragma: no cover

    return make


# -- cards -------------------------------------------------------------------------------------

CARD_BRANDS = {  # prefixes, lengths (published IIN ranges)
    "visa": (["4"], [16, 16, 13, 19]),
    "mastercard": ([str(p) for p in range(51, 56)] + ["2221", "2720", "23", "26"], [16]),
    "amex": (["34", "37"], [15]),
    "discover": (["6011", "644", "649", "65"], [16, 19]),
    "diners": (["36", "38", "300", "305"], [14]),
    "jcb": ([str(p) for p in range(3528, 3590, 7)], [16, 19]),
    "maestro": (
        ["5018", "5020", "5038", "5893", "6304", "6759", "6761", "6762", "6763"],
        [12, 13, 16, 19],
    ),
    "unionpay": (["62"], [16, 19]),
}


def card(brand: str) -> Make:
    prefixes, lengths = CARD_BRANDS[brand]

    def make(rng: random.Random) -> str:
        prefix, length = rng.choice(prefixes), rng.choice(lengths)
        body = prefix + num(rng, length - len(prefix) - 1)
        digits = body + luhn_digit(body)
        style = rng.randrange(3)
        if style == 0:
            return digits
        sep = " " if style == 1 else "-"
        if length == 15:
            return sep.join((digits[:4], digits[4:10], digits[10:]))
        if length == 14:
            return sep.join((digits[:4], digits[4:10], digits[10:]))
        return sep.join(digits[i : i + 4] for i in range(0, length, 4))

    return make


# -- IBANs -------------------------------------------------------------------------------------

IBAN_BBAN = {  # country: BBAN as (alphabet, count) pieces, from the SWIFT IBAN registry
    "DE": [("d", 18)],
    "GB": [("A", 4), ("d", 14)],
    "FR": [("d", 10), ("X", 11), ("d", 2)],
    "ES": [("d", 20)],
    "IT": [("A", 1), ("d", 10), ("X", 12)],
    "NL": [("A", 4), ("d", 10)],
    "BE": [("d", 12)],
    "CH": [("d", 5), ("X", 12)],
    "AT": [("d", 16)],
    "PL": [("d", 24)],
    "BR": [("d", 23), ("A", 1), ("X", 1)],
}
_ALPHABETS = {
    "d": string.digits,
    "A": string.ascii_uppercase,
    "X": string.ascii_uppercase + string.digits,
}


def iban(country: str) -> Make:
    def make(rng: random.Random) -> str:
        bban = "".join(
            "".join(rng.choice(_ALPHABETS[a]) for _ in range(n)) for a, n in IBAN_BBAN[country]
        )
        compact = country + iban_check_digits(country, bban) + bban
        if rng.random() < 0.5:
            return compact
        return " ".join(compact[i : i + 4] for i in range(0, len(compact), 4))

    return make


# -- national identifiers -----------------------------------------------------------------------


def us_ssn(sep: str) -> Make:
    def make(rng: random.Random) -> str:
        area = rng.choice([a for a in range(1, 900) if a != 666])
        return f"{area:03d}{sep}{rng.randrange(1, 100):02d}{sep}{rng.randrange(1, 10000):04d}"

    return make


def uk_nino(rng: random.Random) -> str:
    first = rng.choice([c for c in string.ascii_uppercase if c not in "DFIQUV"])
    second = rng.choice([c for c in string.ascii_uppercase if c not in "DFIOQUV"])
    if first + second in ("BG", "GB", "KN", "NK", "NT", "TN", "ZZ"):
        return uk_nino(rng)
    d = num(rng, 6)
    suffix = rng.choice("ABCD")
    if rng.random() < 0.5:
        return f"{first}{second}{d}{suffix}"
    return f"{first}{second} {d[:2]} {d[2:4]} {d[4:]} {suffix}"


def de_steuer_id(rng: random.Random) -> str:
    """Eleven digits: in the first ten, one digit twice and the rest once, no leading 0."""
    while True:
        chosen = rng.sample(string.digits, 9)
        first10 = [*chosen, rng.choice(chosen)]
        rng.shuffle(first10)
        if first10[0] != "0":
            break
    first = "".join(first10)
    value = first + steuer_id_digit(first)
    return value if rng.random() < 0.5 else f"{value[:2]} {value[2:5]} {value[5:8]} {value[8:]}"


def fr_nir(rng: random.Random) -> str:
    dept = rng.choice([d for d in range(1, 96) if d != 20])
    first13 = (
        f"{rng.choice('12')}{rng.randrange(100):02d}{rng.randrange(1, 13):02d}"
        f"{dept:02d}{rng.randrange(1, 991):03d}{rng.randrange(1, 1000):03d}"
    )
    key = nir_key(first13)
    if rng.random() < 0.5:
        return first13 + key
    s = first13
    return f"{s[0]} {s[1:3]} {s[3:5]} {s[5:7]} {s[7:10]} {s[10:13]} {key}"


def in_aadhaar(rng: random.Random) -> str:
    payload = str(rng.randrange(2, 10)) + num(rng, 10)
    value = payload + verhoeff_digit(payload)
    return value if rng.random() < 0.3 else f"{value[:4]} {value[4:8]} {value[8:]}"


def br_cpf(rng: random.Random) -> str:
    base = num(rng, 9)
    if len(set(base)) == 1:
        return br_cpf(rng)
    value = base + cpf_digits(base)
    return f"{value[:3]}.{value[3:6]}.{value[6:9]}-{value[9:]}" if rng.random() < 0.7 else value


def es_dni(rng: random.Random) -> str:
    n = rng.randrange(10**7, 10**8)
    return f"{n}{DNI_LETTERS[n % 23]}" if rng.random() < 0.7 else f"{n}-{DNI_LETTERS[n % 23]}"


PASSPORTS = {
    "US": lambda rng: rng.choice([num(rng, 9), rng.choice("ACEFHJKLMNPRSTUVWXYZ") + num(rng, 8)]),
    "UK": lambda rng: num(rng, 9),
    "DE": lambda rng: "C" + "".join(rng.choice("CFGHJKLMNPRTVWXYZ0123456789") for _ in range(8)),
    "FR": lambda rng: (
        num(rng, 2) + "".join(rng.choice(string.ascii_uppercase) for _ in range(2)) + num(rng, 5)
    ),
    "IN": lambda rng: rng.choice("ABCDEFGHJKLMNPRSTUVWZ") + str(rng.randrange(1, 10)) + num(rng, 6),
}

# -- names, addresses, dates, addresses on the network ---------------------------------------

NAMES = {
    "US": (
        ["James", "Mary", "Robert", "Linda", "Michael", "Jennifer", "David", "Ashley"],
        ["Johnson", "Williams", "Brown", "Garcia", "Miller", "Davis", "Martinez", "Wilson"],
    ),
    "UK": (
        ["Oliver", "Amelia", "Harry", "Isla", "George", "Poppy", "Jack", "Freya"],
        ["Smith", "Jones", "Taylor", "Evans", "Thomas", "Roberts", "Walker", "Wright"],
    ),
    "DE": (
        ["Lukas", "Anna", "Jonas", "Lea", "Felix", "Hannah", "Maximilian", "Sophie"],
        ["Müller", "Schmidt", "Schneider", "Fischer", "Weber", "Becker", "Hoffmann", "Schäfer"],
    ),
    "FR": (
        ["Lucas", "Emma", "Hugo", "Chloé", "Louis", "Camille", "Gabriel", "Léa"],
        ["Martin", "Bernard", "Dubois", "Thomas", "Robert", "Richard", "Petit", "Durand"],
    ),
    "ES": (
        ["Alejandro", "Lucía", "Javier", "Carmen", "Pablo", "Elena", "Diego", "Marta"],
        ["García", "Fernández", "González", "Rodríguez", "López", "Martínez", "Sánchez", "Pérez"],
    ),
    "IN": (
        ["Aarav", "Priya", "Rohan", "Ananya", "Vikram", "Sneha", "Arjun", "Kavya"],
        ["Sharma", "Patel", "Iyer", "Reddy", "Gupta", "Nair", "Singh", "Mehta"],
    ),
    "BR": (
        ["João", "Ana", "Pedro", "Mariana", "Lucas", "Beatriz", "Gabriel", "Juliana"],
        ["Silva", "Santos", "Oliveira", "Souza", "Pereira", "Costa", "Rodrigues", "Almeida"],
    ),
    "JP": (
        ["Haruto", "Yui", "Sota", "Hina", "Ren", "Aoi", "Yuto", "Sakura"],
        ["Sato", "Suzuki", "Takahashi", "Tanaka", "Watanabe", "Ito", "Yamamoto", "Nakamura"],
    ),
}


def name(locale: str) -> Make:
    firsts, lasts = NAMES[locale]
    return lambda rng: f"{rng.choice(firsts)} {rng.choice(lasts)}"


def address(locale: str) -> Make:
    def make(rng: random.Random) -> str:
        n = rng.randrange(1, 250)
        if locale == "US":
            street = rng.choice(["Maple Street", "Oak Avenue", "Sunset Blvd", "Pine Road"])
            city = rng.choice([("Springfield", "IL"), ("Austin", "TX"), ("Portland", "OR")])
            return f"{n} {street}, {city[0]}, {city[1]} {rng.randrange(10000, 99999)}"
        if locale == "UK":
            street = rng.choice(["High Street", "Station Road", "Church Lane", "Victoria Road"])
            town = rng.choice(["Leeds LS1", "Bristol BS8", "Manchester M14", "York YO10"])
            return (
                f"{n} {street}, {town} {rng.randrange(1, 10)}{rng.choice('ABDEFGHJLNPQRSTUWXYZ')}"
                f"{rng.choice('ABDEFGHJLNPQRSTUWXYZ')}"
            )
        if locale == "DE":
            street = rng.choice(["Hauptstraße", "Bahnhofstraße", "Gartenweg", "Schillerstraße"])
            city = rng.choice(["Berlin", "München", "Köln", "Hamburg"])
            return f"{street} {n}, {rng.randrange(10000, 99999)} {city}"
        if locale == "FR":
            street = rng.choice(["rue de la Paix", "avenue Victor Hugo", "boulevard Voltaire"])
            city = rng.choice(["Paris", "Lyon", "Marseille", "Toulouse"])
            return f"{n} {street}, {rng.randrange(10000, 95999)} {city}"
        street = rng.choice(["Calle Mayor", "Avenida de América", "Calle de Alcalá"])
        return f"{street} {n}, {rng.randrange(10000, 52999)} {rng.choice(['Madrid', 'Sevilla'])}"

    return make


_MONTHS = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
]


def date_of_birth(locale: str) -> Make:
    def make(rng: random.Random) -> str:
        y, m, d = rng.randrange(1940, 2006), rng.randrange(1, 13), rng.randrange(1, 29)
        if locale == "US":
            return rng.choice([f"{m:02d}/{d:02d}/{y}", f"{_MONTHS[m - 1]} {d}, {y}"])
        if locale == "DE":
            return f"{d:02d}.{m:02d}.{y}"
        if locale == "UK":
            return rng.choice([f"{d:02d}/{m:02d}/{y}", f"{d} {_MONTHS[m - 1]} {y}"])
        return f"{y}-{m:02d}-{d:02d}"

    return make


def ipv4(rng: random.Random) -> str:
    while True:
        address_ = ipaddress.IPv4Address(rng.getrandbits(32))
        if address_.is_global and not address_.is_multicast:
            return str(address_)


def ipv6(rng: random.Random) -> str:
    while True:
        address_ = ipaddress.IPv6Address(
            (0x2001 << 112 | rng.getrandbits(112))
            if rng.random() < 0.5
            else (0x2A00 << 112 | rng.getrandbits(112))
        )
        if address_.is_global:
            return str(address_) if rng.random() < 0.7 else address_.exploded


def email(rng: random.Random) -> str:
    locale = rng.choice(list(NAMES))
    first, last = (
        s.lower().translate(str.maketrans("äöüéèíóáçã", "aoueeioaca"))
        for s in name(locale)(rng).split()
    )
    local = rng.choice(
        [
            f"{first}.{last}",
            f"{first[0]}{last}",
            f"{first}_{last}{rng.randrange(99)}",
            f"{first}+billing",
        ]
    )
    domain = rng.choice(
        [
            "gmail.com",
            "outlook.de",
            "yahoo.fr",
            "acme-corp.io",
            "mail.example.org",
            "uni-hamburg.de",
            "empresa.com.br",
            "company.co.jp",
        ]
    )
    return f"{local}@{domain}"


def _p(
    family: str, name_: str, locale: str | None, make: Make, labels: tuple[str, ...], key: str
) -> PersonalKind:
    return PersonalKind(family, name_, locale, make, labels, key)


_PHONE_LABELS = {
    "US": ("phone", "cell"),
    "UK": ("phone", "mobile"),
    "DE": ("Telefon", "phone"),
    "FR": ("Tél.", "phone"),
    "IN": ("mobile", "phone"),
    "BR": ("telefone", "phone"),
    "JP": ("電話", "phone"),
}

KINDS: tuple[PersonalKind, ...] = (
    _p("email", "email", None, email, ("email", "e-mail address"), "email"),
    *(
        _p("phone", f"phone-{style}", loc, phone(region, style), _PHONE_LABELS[loc], "phone")
        for loc, region in PHONE_LOCALES.items()
        for style in _PHONE_FORMATS
    ),
    *(
        _p(
            "payment-card",
            f"card-{brand}",
            None,
            card(brand),
            ("card number", "credit card"),
            "card_number",
        )
        for brand in CARD_BRANDS
    ),
    *(
        _p("iban", "iban", country, iban(country), ("IBAN", "bank account"), "iban")
        for country in IBAN_BBAN
    ),
    _p("us-ssn", "ssn-dashes", "US", us_ssn("-"), ("SSN", "social security number"), "ssn"),
    _p("us-ssn", "ssn-spaces", "US", us_ssn(" "), ("SSN", "social security number"), "ssn"),
    _p("us-ssn", "ssn-plain", "US", us_ssn(""), ("SSN", "social security number"), "ssn"),
    _p("national-id", "uk-nino", "UK", uk_nino, ("National Insurance number", "NI number"), "nino"),
    _p("national-id", "de-steuer-id", "DE", de_steuer_id, ("Steuer-ID", "tax ID"), "steuer_id"),
    _p("national-id", "fr-nir", "FR", fr_nir, ("numéro de sécurité sociale", "NIR"), "nir"),
    _p("national-id", "in-aadhaar", "IN", in_aadhaar, ("Aadhaar", "Aadhaar number"), "aadhaar"),
    _p("national-id", "br-cpf", "BR", br_cpf, ("CPF", "CPF number"), "cpf"),
    _p("national-id", "es-dni", "ES", es_dni, ("DNI", "DNI number"), "dni"),
    *(
        _p("passport", "passport", loc, make, ("passport number", "passport no."), "passport_no")
        for loc, make in PASSPORTS.items()
    ),
    *(_p("name", "name", loc, name(loc), ("name", "full name"), "full_name") for loc in NAMES),
    *(
        _p("address", "street-address", loc, address(loc), ("address", "home address"), "address")
        for loc in ("US", "UK", "DE", "FR", "ES")
    ),
    *(
        _p(
            "date-of-birth",
            "date-of-birth",
            loc,
            date_of_birth(loc),
            ("date of birth", "DOB"),
            "dob",
        )
        for loc in ("US", "UK", "DE", "ISO")
    ),
    _p("ip-address", "ipv4", None, ipv4, ("IP address", "client IP"), "client_ip"),
    _p("ip-address", "ipv6", None, ipv6, ("IPv6 address", "client IP"), "client_ip"),
)
