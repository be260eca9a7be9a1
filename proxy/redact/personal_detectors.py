"""The built-in detectors of personal data, in families a profile can name: pii.contact,
pii.financial, pii.government-id, pii.identity, pii.network.

Group `pii` holds the precise ones (a checksum, a brand, a label, a plan of numbers to
agree with); group `pii.extended` holds those that guess from words around them (names,
street addresses), which run only when a profile names them. The checks themselves are in
personal_checks.py.
"""

from __future__ import annotations

import re
from functools import cache, partial

from proxy.redact import personal_checks as check
from proxy.redact.detectors import Detector, detector

CONTACT, FINANCIAL, GOVERNMENT_ID = "pii.contact", "pii.financial", "pii.government-id"
IDENTITY, NETWORK = "pii.identity", "pii.network"

# may end a sentence; may carry an extension ("x5938", "ext. 12")
_PHONE = r"(?<![\w+.:-])\+?\(?\d[\d ().-]{6,18}\d(?:\s?(?:x|ext\.?)\s?\d{1,5})?(?![\w:-]|\.\w)"


@cache
def phone_detector(regions: tuple[str, ...] = ()) -> Detector:
    """The phone detector, also accepting national formats of `regions` (ISO codes) with no
    country named nearby; one object per set of regions."""
    # (the function itself when no region is configured: a partial's keyword cost 0.4 µs a
    # call, on thousands of candidates a prompt)
    context = check.phone_in_context
    if regions:
        context = partial(check.phone_in_context, regions=regions)
    return detector("phone", "pii", _PHONE, context=context, digits=(8, 15), window=(3, 3),
                    family=CONTACT, run_skip=check.phone_run_unmatched)  # fmt: skip


_MONTH = (
    r"(?:jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?|"
    r"sep(?:t(?:ember)?)?|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?|januar|februar|märz|mai|"
    r"juni|juli|oktober|dezember|janvier|février|mars|avril|juin|juillet|août|septembre|"
    r"octobre|novembre|décembre|enero|febrero|marzo|abril|mayo|junio|julio|agosto|"
    r"septiembre|setiembre|octubre|noviembre|diciembre|gennaio|febbraio|aprile|maggio|giugno|"
    r"luglio|settembre|ottobre|dicembre|janeiro|fevereiro|março|maio|junho|julho|setembro|"
    r"outubro|novembro|dezembro|januari|februari|maart|mei|augustus)"
)
_MONTH_STARTS = "adefgjlmnos"  # every month of _MONTH starts with one of them
_DATE = (
    # (a word that no month starts is left at once: the months are tried one by one)
    rf"(?<![\w./-])(?=[0-9]|(?i:[{_MONTH_STARTS}]))"
    r"(?:\d{4}-\d\d-\d\d|\d{4}/\d\d?/\d\d?|\d\d?[./-]\d\d?[./-](?:\d{4}|\d\d)(?![\d]|[./-]\d)"
    rf"|\d\d?(?:st|nd|rd|th)?\.?\s+(?:of\s+|de\s+)?(?i:{_MONTH})\.?,?\s+(?:de\s+)?\d{{4}}"
    rf"|(?i:{_MONTH})\.?\s+\d\d?(?:st|nd|rd|th)?,?\s+\d{{4}}|\d{{4}}年\d\d?月\d\d?日)(?![\w/-]|\.\d)"
)
_BIRTH_WORDS = ("birth", "dob", "d.o.b", "born", "geboren", "geburtsdatum", "geb.", "naissance",
                "né le", "née le", "nacimiento", "nacido", "nacida", "nací", "nascita", "nato il",
                "nata il", "nascimento", "nasci", "geboortedatum", "生年月日",
                "誕生日")  # fmt: skip
_PASSPORT_WORDS = ("passport", "reisepass", "passeport", "pasaporte", "passaporto", "paspoort",
                   "passaporte", "パスポート", "旅券")  # fmt: skip
_TAX_ID_WORDS = ("steuer", "idnr", "identifikationsnummer", "tax id", "tax-id",
                 "tax identification")  # fmt: skip
_BSN_WORDS = ("bsn", "burgerservicenummer", "sofinummer", "sofi-nummer", "citizen service number")
_AADHAAR_WORDS = ("aadhaar", "aadhar", "adhaar", "uidai")
_UPPER, _LOWER = r"[A-Z\u00c0-\u00d6\u00d8-\u00de]", r"[a-z\u00df-\u00f6\u00f8-\u00ff]"
_NAME_WORD = rf"{_UPPER}{_LOWER}+(?:[-'’]{_UPPER}{_LOWER}+)*"
_PARTICLE = r"(?:van|von|vom|zu|de|da|di|del|della|der|den|du|dos|das|do|le|la|ten|ter|y|e|'t)"
# between the words of a name: a space and particles ("Ecrin van 't Houteveen"), or a hyphen
# and particles ("Sami van Heusden-van Allemanië", "Chris Demmendaal-de Plantard")
_NAME_GAP = rf"(?:[ \t](?:{_PARTICLE}[ \t]){{0,2}}|-(?:{_PARTICLE}[ \t]){{1,2}})"
# degrees after a name: "Gerhild Schmidtke B.Eng.", "Heini Stahr MBA.", "Ana Ruiz PhD"
_DEGREE = r"(?:,?[ \t](?:B\.(?:A|Sc|Eng)\.?|M\.(?:A|Sc|Eng)\.?|MBA\.?|Ph\.?D\.?|Jr\.|Sr\.|II|III))?"
_CJK = r"[\u3005\u4e00-\u9fff\u30a0-\u30ff]"  # kanji, 々 and katakana (rarely hiragana)
# a Japanese family name then maybe the given name, which may be hiragana ("渡辺 あすか")
_CJK_NAME = rf"{_CJK}{{1,5}}(?:[ \u3000][\u3005\u3040-\u30ff\u4e00-\u9fff]{{1,5}})?"
_NAME = (
    rf"({_NAME_WORD}(?:{_NAME_GAP}{_NAME_WORD}){{0,5}}{_DEGREE}"
    r"(?![A-Za-z\u00c0-\u024f])"  # never the start of a longer word ("Müller Gmb|H")
    rf"|{_CJK_NAME})"
)
# titles between a label and the name: "Customer: Ms Nicola Harris", "Nome: Dott. Greco"
_TITLES = (
    r"(?:(?:Mr|Mrs|Ms|Miss|Mx|Dr|Dra|Prof|Ing|Dipl\.-Ing|Dott|Dott\.ssa|Sig|Sig\.ra|Mme|Mlle|"
    r"Sr|Sra|Srta|Herr|Frau|M)\.?[ \t]+){0,3}"
)
# Every label starts with one of _NAME_KEYWORDS, so the regex is tried only where one is.
_NAME_LABEL = (
    r"(?:(?<![^\W_])(?i:"
    # what people say: "my name is", "je m'appelle", "ich heiße", "me llamo"...
    r"my\s+(?:full\s+)?name\s+is|my\s+name's|je\s+m'appelle|mon\s+nom\s+est|ich\s+hei(?:ß|ss)e|"
    r"mein\s+name\s+ist|me\s+llamo|mi\s+nombre\s+es|(?:eu\s+)?me\s+chamo|meu\s+nome\s+é|"
    r"mi\s+chiamo|il\s+mio\s+nome\s+è|mijn\s+naam\s+is|ik\s+heet|"
    # form labels and keys: "Name:", "Nom complet :", "customer_name": ...
    r"(?:name|(?:nom|nombre|nome)(?:\s+complet[oa]?|\s+e\s+cognome)?|(?:volledige\s+)?naam|"
    r"vor-?\s*und\s+nachname|patient|customer|employee)\"?\s*(?:[:：]|-(?=\s))|"
    r"(?:mr|mrs|ms|miss|mx|dr|dra|prof|herr|frau|monsieur|madame|mme|mlle|señor|señora|sr|sra|"
    r"srta|signor|signora|dott)\b\.?|"
    # greetings and sign-offs: only a known first name, or a name alone on its line
    r"(?:dear|hi|hello|hey|hallo|bonjour|hola|ciao|liebe[r]?|sehr\s+geehrter?|cher|chère|"
    r"estimad[oa]|querid[oa]|olá|prezad[oa]|gentile|beste|geachte|hoi)(?![\w\u00c0-\u024f]),?|"
    r"(?:regards|thanks|thank\s+you|cheers|sincerely|best|yours|cordialement|grüße|gruß|"
    r"saludos|saluti|bien\s+à\s+vous|un\s+saludo|atenciosamente|abraços|groeten|groet)"
    r"(?![\w\u00c0-\u024f])[,!]?|"
    # who introduces themselves: "This is Dana Williams from accounts"
    r"this\s+is(?=\s)|"
    r"(?:full\s+)?name(?-i:(?:\s+[a-z]+){1,4}))"
    r"|(?:氏名|名前)\s*[:：]?|私の名前は|よろしくお願い(?:いた)?します。?)"
)
# (not "hey", "ms ", "mme": they are in "they", "items ", "comment")
_NAME_KEYWORDS = (
    "my name", "my full name", "name", "full name", "patient", "customer", "employee", "mr.",
    "mr ", "mrs", "ms.", " ms ", "miss ", "mx.", " mx ", "dr.", "dr ", "dra.", "dra ", "prof.",
    "prof ", "herr ", "frau ", "monsieur", "madame", "mme ", "mme.", "mlle", "señor", "sr.",
    "sr ", "sra ", "sra.", "srta", "signor", "dott", "dear", "hi ", "hi,", "hello", "hey ", "hey,",
    "hallo", "bonjour", "hola", "ciao", "regards", "thanks", "thank you", "cheers", "sincerely",
    "best,", "best ", "yours", "cordialement", "grüße", "gruß", "saludos", "saluti",
    "je m'appelle", "mon nom", "ich heiße", "ich heisse", "mein name", "me llamo", "mi nombre",
    "me chamo", "eu me chamo", "meu nome", "mi chiamo", "il mio nome", "mijn naam", "ik heet",
    "nom", "nombre", "nome", "naam", "volledige naam", "vor- und", "vor und", "vorund",
    "liebe", "sehr geehrte", "cher ", "cher,", "chère", "estimad", "querid", "olá", "prezad",
    "gentile", "beste ", "beste,", "geachte", "hoi ", "hoi,", "bien à vous", "un saludo",
    "atenciosamente", "abraços", "groeten", "groet", "氏名", "名前", "私の名前は", "this is",
    "よろしくお願い",
)  # fmt: skip
_LETTERS = r"[A-Za-z\u00c0-\u024f]"
_STREET_NAME = rf"{_UPPER}{_LOWER}+(?:-{_UPPER}{_LOWER}+)*"
_STREET_PLAIN = (
    # en: 221B Baker Street, 59419 Hawkins Landing; in: 77, Kadakia Marg
    r"\b\d{1,5}[A-Za-z]?(?:/\d{1,5})?,?\s+(?:[A-Z][a-z]+\s+){1,3}(?:Street|St|Avenue|Ave|Road|"
    r"Rd|Boulevard|Blvd|Lane|Ln|Drive|Dr|Court|Ct|Terrace|Place|Pl|Way|Crescent|Close|Square|"
    r"Parkway|Pkwy|Highway|Hwy|Knoll|Landing|Springs|Pines|Vista|Valley|Junction|Mews|Estates|"
    r"Heights|Hills|Gardens|Grove|Trail|Circle|Ridge|Marg|Nagar|Chowk)\b"
    # de, nl: Hauptstraße 5, Keizersgracht 123, Agnes-Wesack-Straße 26
    rf"|\b{_STREET_NAME}(?:straße|strasse|str\.|weg|allee|platz|gasse|damm|ufer|chaussee|pfad|"
    r"steig|straat|laan|gracht|plein|kade|singel|steeg|dreef|hof|boulevard|baan)\s+\d{1,4}[a-z]?\b"
    rf"|\b{_STREET_NAME}[\s-](?:Straße|Strasse|Str\.|Weg|Allee|Platz|Gasse|Ring|Damm|Ufer)\s+"
    r"\d{1,4}[a-z]?\b"
    # fr: 10 rue de Rivoli; "rue de la Paix" with no number too (never "rue the day")
    r"|\b\d{1,4}(?:\s?(?:bis|ter))?,?\s+(?:rue|avenue|boulevard|bd|place|chemin|allée|impasse|"
    rf"quai|route|cours)\s+(?:de\s+la\s+|de\s+l'|du\s+|des\s+|de\s+|d')?{_UPPER}{_LOWER}+"
    rf"|\b(?:rue|chemin|impasse|allée)\s+(?:de\s+la\s+|de\s+l'|du\s+|des\s+|de\s+|d')?"
    rf"{_UPPER}{_LOWER}+"
    # es, it, pt: Calle Mayor 12, Via Roma 1, Rua Augusta, 15
    r"|\b(?:Calle|C/|Avenida|Avda\.|Plaza|Paseo|Pasaje|Callejón|Rambla|Ronda|Glorieta|Camino|"
    r"Carretera|Travesía|Urbanización|Carrer|Via|Viale|Piazza|Piazzale|Corso|Vicolo|Strada|"
    r"Contrada|Largo|Borgo|Rua|Travessa|Alameda|Rodovia|Praça|Estrada|Ladeira|Viela)\s+"
    r"(?:(?:de|del|della|dei|do|da|dos)\s+(?:la\s+|los\s+)?)?"
    rf"{_UPPER}{_LOWER}+(?:\s+{_UPPER}{_LOWER}+){{0,2}},?\s+(?:n[º°o]\.?\s*)?\d{{1,4}}\b"
    # ja: 芝大門28丁目20番1号 (with the prefecture and city before it)
    r"|[\u4e00-\u9fff\u3040-\u30ff]{0,20}\d{1,4}丁目(?:\d{1,4}番地?)?(?:\d{1,4}号?)?"
)
# "Address:", "Anschrift:", "ship to", "I live at"... then what is shaped as a street and a
# number, in either order, up to the end of its line or sentence
_ADDRESS_LABEL = (
    r"(?<![Ii][Pp][\s-])(?<![Mm][Aa][Cc]\s)(?<![Mm][Aa][Ii][Ll]\s)(?<![Ww][Ee][Bb]\s)"
    r"(?i:\b(?:(?:home\s+|street\s+|postal\s+|mailing\s+|shipping\s+|delivery\s+)?address"
    r"(?:_?line_?\d)?|street(?=\"?\s*(?:[:：=]|-\s))|"
    r"adresse|anschrift|dirección|direccion|domicilio|domicile|endereço|endereco|indirizzo|"
    r"residenza|adres|woonadres|logradouro|ship\s+(?:it\s+)?to|deliver\s+(?:it\s+)?to|"
    r"send\s+it\s+to|i\s+live\s+at|wohnhaft\s+in|livrez\s+au|j'habite\s+au|vivo\s+en|"
    r"moro\s+na|abito\s+in|ik\s+woon\s+op|env[ií]elo\s+a|envie\s+para|spedite\s+a|"
    r"stuur\s+het\s+naar|liefern\s+sie\s+an|wohne\s+in\s+der)\b)"
)
_ADDRESS_VALUE = (
    rf"\d{{1,5}}[A-Za-z]?(?:/\d{{1,5}})?,?[ \t]+(?:{_UPPER}|(?:rue|avenue|boulevard|bd|chemin|"
    rf"allée|impasse|place|quai|route|cours)\b){_LETTERS}*(?:[ \t]+[\w'’.-]+){{0,5}}"
    rf"|{_UPPER}[\w'’.-]*(?:[ \t]+[\w'’.-]+){{0,4}}?,?[ \t]+\d{{1,5}}[a-z]?(?![\w:/-]|\.\w)"
)
_STREET = (
    # Every alternative starts at a word boundary, but the Japanese one (a kanji, kana or
    # digit): said first, the regex leaves the middle of words at once (street: 30 % faster).
    r"(?=\b|[\u4e00-\u9fff\u3040-\u30ff0-9])"
    # after a separator the value may be on the next line; without one, on the same line
    rf"(?:(?P<label>{_ADDRESS_LABEL})\"?[ \t]*(?:(?:[:：=]|-(?=\s))[\s\"']*|[ \t\"']+))?"
    rf"({_STREET_PLAIN}|(?(label)(?:{_ADDRESS_VALUE})|(?!)))"
)
# What a part of every street matches, for Hyperscan (Detector.hint): an alternative of
# _STREET_PLAIN each (or the words of it that make it a street), and a label with its
# separator and the value's first character; "?" for a character that is not ASCII
_STREET_HINT = (
    r"[0-9][A-Za-z]?(?:/[0-9]{1,5})?,?\s+(?:[A-Z][a-z]+\s+){1,3}(?:Street|St|Avenue|Ave|Road|"
    r"Rd|Boulevard|Blvd|Lane|Ln|Drive|Dr|Court|Ct|Terrace|Place|Pl|Way|Crescent|Close|Square|"
    r"Parkway|Pkwy|Highway|Hwy|Knoll|Landing|Springs|Pines|Vista|Valley|Junction|Mews|Estates|"
    r"Heights|Hills|Gardens|Grove|Trail|Circle|Ridge|Marg|Nagar|Chowk)"
    r"|(?:stra\?e|strasse|str\.|weg|allee|platz|gasse|damm|ufer|chaussee|pfad|steig|straat|laan|"
    r"gracht|plein|kade|singel|steeg|dreef|hof|boulevard|baan|Stra\?e|Strasse|Str\.|Weg|Allee|"
    r"Platz|Gasse|Ring|Damm|Ufer)\s+[0-9]"
    r"|[0-9](?:\s?(?:bis|ter))?,?\s+(?:rue|avenue|boulevard|bd|place|chemin|all\?e|impasse|quai|"
    r"route|cours)\s"
    r"|\b(?:rue|chemin|impasse|all\?e)\s+(?:de\s+la\s+|de\s+l'|du\s+|des\s+|de\s+|d')?[A-Z?]"
    r"|(?:Calle|C/|Avenida|Avda\.|Plaza|Paseo|Pasaje|Callej\?n|Rambla|Ronda|Glorieta|Camino|"
    r"Carretera|Traves\?a|Urbanizaci\?n|Carrer|Via|Viale|Piazza|Piazzale|Corso|Vicolo|Strada|"
    r"Contrada|Largo|Borgo|Rua|Travessa|Alameda|Rodovia|Pra\?a|Estrada|Ladeira|Viela)\s+"
    r"(?:(?:de|del|della|dei|do|da|dos)\s+(?:la\s+|los\s+)?)?[A-Z?][a-z?]+(?:\s+[A-Z?][a-z?]+){0,2}"
    r",?\s+(?:n[?o]\.?\s*)?[0-9]"
    r"|[0-9]\?\?"  # 28丁目
    r"|(?i:address|street|adresse|anschrift|direcci\?n|direccion|domicilio|domicile|endere\?o|"
    r"endereco|indirizzo|residenza|adres|logradouro|ship\s+(?:it\s+)?to|deliver\s+(?:it\s+)?to|"
    r"send\s+it\s+to|i\s+live\s+at|wohnhaft\s+in|livrez\s+au|j'habite\s+au|vivo\s+en|moro\s+na|"
    r"abito\s+in|ik\s+woon\s+op|env[i?]elo\s+a|envie\s+para|spedite\s+a|stuur\s+het\s+naar|"
    r"liefern\s+sie\s+an|wohne\s+in\s+der)"
    r"(?:_?line_?[0-9])?\"?[ \t]*(?:[:?=-][\s\"']*|[ \t\"']+)[0-9A-Z?]"
)
# Case-sensitive, as the patterns are: "Road", not the "road" of "roadmap"; " rue ", not "true "
_STREET_WORDS = (
    "Street", "St.", "St,", "Avenue", "Ave", "Road", "Rd", "Boulevard", "Blvd", "Lane", "Drive",
    "Court", "Terrace", "Place", "Way", "Crescent", "Close", "Square", "Parkway", "Highway", "Ln",
    "Dr", "Ct", "Pl", "Pkwy", "Hwy", "Knoll", "Landing", "Springs", "Pines", "Vista", "Valley",
    "Junction", "Mews", "Estates", "Heights", "Hills", "Gardens", "Grove", "Trail", "Circle",
    "Ridge", "Marg", "Nagar", "Chowk",
    "straße", "strasse", "str.", "weg ", "allee", "platz", "gasse", "damm", "ufer", "chaussee",
    "pfad", "steig", "steeg", "dreef", "hof ", "Ring ", "-Ring", "Damm", "Ufer",
    "straat", "laan", "gracht", "plein", "kade", "singel", "boulevard", "baan", "Straße",
    "Strasse", "Str.", "Weg",
    "Allee", "Platz", "Gasse", " rue ", " avenue ", " boulevard ", " bd ", " place ", " chemin ",
    " allée ", " impasse ", " quai ", " route ", " cours ", "rue ", "chemin ", "impasse ",
    "allée ", "Calle ", "C/", "Avenida ", "Avda.", "Plaza ", "Paseo ", "Pasaje ", "Callejón ",
    "Rambla ", "Ronda ", "Glorieta ", "Camino ", "Carretera ", "Travesía ", "Urbanización ",
    "Carrer ", "Via ", "Viale ", "Piazza ", "Piazzale ", "Corso ", "Vicolo ", "Strada ",
    "Contrada ", "Largo ", "Borgo ", "Rua ", "Travessa ", "Alameda ", "Rodovia ", "Praça ",
    "Estrada ", "Ladeira ", "Viela ", "丁目",
)  # fmt: skip
_ADDRESS_WORDS = (
    "address", "street", "adresse", "anschrift", "dirección", "direccion", "domicilio", "domicile",
    "endereço", "endereco", "indirizzo", "residenza", "adres", "logradouro", "ship to",
    "ship it to", "deliver to", "deliver it to", "send it to", "i live at", "wohnhaft in",
    "livrez au", "j'habite au", "vivo en", "moro na", "abito in", "ik woon op", "envíelo a",
    "envielo a", "envie para", "spedite a", "stuur het naar", "liefern sie an", "wohne in der",
)  # fmt: skip
# Both start with a digit, which re finds fast (a lookbehind first would try every position);
# public IPv6 addresses (2000::/3) start with 2 or 3. ipaddress checks the rest.
_IP = (
    r"[0-9](?<![\w.][0-9])"  # one lookbehind for both: logs are dense with digits
    r"(?:(?!(?<=1)(?:0|27|92\.168|72\.(?:1[6-9]|2\d|3[01]))\.)"  # not 10/8, 127/8, 192.168/16...
    r"\d{0,2}\.\d{1,3}\.\d{1,3}\.\d{1,3}(?!\w|\.\w|/\d)"  # (a network /24 names no one)
    r"|(?<=[23])(?<!:.)[0-9A-Fa-f]{0,3}:[0-9A-Fa-f]{0,4}(?::[0-9A-Fa-f]{0,4}){1,6}(?![\w:]|/\d))"
)

# what _IP matches, lookaheads left out, and the character its lookbehinds read before it (or
# the text's start): for Hyperscan (Detector.hint); 39 characters at most. Not the times of
# day of a log's timestamps ("2026-05-11T20:14:44"), two in three of a prompt's hints.
_IP_HINT = (
    r"(?:^|[^A-Za-z0-9_.])[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}"
    r"|(?:^|[^A-Za-z0-9_.:])[23][0-9A-Fa-f]{0,3}:[0-9A-Fa-f]{0,4}(?::[0-9A-Fa-f]{0,4}){1,6}"
)

# A name alone in a cell of a comma-separated row or on a line of its own: two to six
# capitalised words, or a Japanese family and given name (the given name may be hiragana).
# Only its surroundings make it a name (personal_checks.name_in_cell): a name column's
# heading above it, or an address on the next line.
_CELL_NAME = (
    rf"(?:\n|,[ \t]?)\"?{_TITLES}"  # (not indented: lists of contributors in code and docs)
    rf"({_NAME_WORD}(?:{_NAME_GAP}{_NAME_WORD}){{1,5}}{_DEGREE}"
    rf"|{_CJK}{{1,5}} [\u3005\u3040-\u30ff\u4e00-\u9fff]{{1,5}})"
    r"\"?[ \t]*(?=[,\r\n])"
)
# what every match of _CELL_NAME matches, in ASCII with the other characters as "?", up to
# the comma or line end after it: for Hyperscan (Detector.hint), rarely met outside tables
_CELL_NAME_HINT = (
    r"(?:\n|,[ \t]?)\"?[A-Z?][A-Za-z?'.-]*(?:[ \t]+(?:[a-z'?]{1,5}[ \t]+){0,2}[A-Z?][A-Za-z?'.-]*)"
    r"{1,8}\"?[ \t]*[,\r\n]"
)

# A cell of a comma-separated row under an address column's heading ("1001,Jeffery Gray,32773
# Wendy Union,..."; quoted when it holds commas): one with a digit, as house numbers have,
# that starts with a number, a capital or a kanji (not code's "(self, address,\n  family=0,").
_ADDRESS_CELL = (
    r"[\n,]\"?(?=[0-9A-Z\u00c0-\u00de\u3005\u4e00-\u9fff])"  # a number, a capital or a kanji first
    r"((?<=\")(?=[^\"\n]{0,100}\d)[^\"\n]{4,100}(?=\")"
    r"|(?<!\")(?=[^\n\",]{0,100}\d)[^\n\",]{4,100}(?=[,\r\n]))"
)
# the headings, as a table's first row writes them: between commas with no space (code's
# "(self, address, port)" has one), first on the line or last
_ADDRESS_HEADINGS = ("address", "street", "adresse", "anschrift", "dirección", "direccion",
                     "domicilio", "endereço", "endereco", "logradouro", "indirizzo", "adres",
                     "住所")  # fmt: skip
_ADDRESS_HEADING_KEYWORDS = tuple(
    f"{before}{w}{after}"
    for w in _ADDRESS_HEADINGS
    for before in ',\n"'
    for after in (",", "\n", "\r", '"', "_line")
)

# A Japanese name that the words after it label: "田中 太郎と申します" (I am called), a letter's
# "花子様" alone on its first line. The name may follow は, の, が ("私は田中と申します").
_JA_NAME_BEFORE = (
    r"(?<![^\n \u3000、。はのが])"  # (one lookbehind: tried at each character of "様様様…")
    rf"({_CJK_NAME}(?=と申します)|[\u3005\u3040-\u30ff\u4e00-\u9fff]{{1,5}}"
    r"(?=様[、,。!！]?[ \t\u3000]*(?:\r?\n|$)))"
)

DETECTORS: tuple[Detector, ...] = (
    # -- pii.contact
    detector("email", "pii",
       r"(?<![/\w.%+-])[A-Za-z0-9._%+-]{1,64}@[A-Za-z0-9-]{1,63}(?:\.[A-Za-z0-9-]{1,63})*"
       r"\.[A-Za-z]{2,24}\b", keywords=("@",), window=(70, 260), family=CONTACT),
    phone_detector(),
    detector("street-address", "pii.extended", _STREET, span=2, keywords=_STREET_WORDS,
       folded=_ADDRESS_WORDS, window=(80, 120), validate=check.address_valid, family=CONTACT,
       hint=_STREET_HINT, kind="street-address"),
    detector("street-address-cell", "pii.extended", _ADDRESS_CELL, span=1,
       folded=_ADDRESS_HEADING_KEYWORDS, window=(0, 4000), context=check.address_in_cell,
       family=CONTACT, kind="street-address"),
    # -- pii.financial
    detector("payment-card", "pii", r"(?<![\d.-])\d(?:[ -]?\d){11,18}(?![\d-])",
       validate=check.card_valid, context=check.card_in_context, digits=(12, 19),
       window=(3, 3), family=FINANCIAL),
    # (\b[A-Z]{2}..., its lookbehind after the first letter: re then skips to capitals fast)
    detector("iban", "pii",
       r"[A-Z](?<![A-Za-z0-9_][A-Z])[A-Z]\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,3})?\b",
       validate=check.iban_valid, digits=(7, 34), after_letters=True, window=(34, 34),
       family=FINANCIAL),
    # -- pii.government-id
    detector("us-ssn", "pii", r"(?<![\d-])\d{3}([- ]?)\d{2}\1\d{4}(?![\d-])",
       validate=check.ssn_valid, context=check.ssn_in_context, digits=(9, 9), window=(3, 3),
       family=GOVERNMENT_ID),
    detector("uk-nino", "pii",
       # the whole text: cheaper than the many six-digit runs of a log (IPs, hex)
       r"[A-CEGHJ-PR-TW-Z](?<![A-Za-z0-9][A-Z])[A-CEGHJ-NPR-TW-Z] ?\d\d ?\d\d ?\d\d ?[A-D]"
       r"(?![A-Za-z0-9])", validate=check.uk_nino_valid, family=GOVERNMENT_ID,
       hint=r"[A-CEGHJ-PR-TW-Z][A-CEGHJ-NPR-TW-Z] ?[0-9]{2} ?[0-9]{2} ?[0-9]{2} ?[A-D]",
       window=(13, 1)),
    # ids that need their name: near it (60 characters on), labelled, or under it in a table
    detector("de-tax-id", "pii", r"(?<![\d-])[1-9]\d ?\d{3} ?\d{3} ?\d{3}(?![\d-])",
       folded=_TAX_ID_WORDS, window=(60, 2000), validate=check.de_tax_id_valid,
       context=partial(check.named_near, check.TAX_ID_WORDS), family=GOVERNMENT_ID),
    detector("fr-nir", "pii",
       r"(?<![\d-])[1-478] ?\d\d ?\d\d ?\d\d ?\d{3} ?\d{3} ?\d\d(?![\d-])",
       validate=check.fr_nir_valid, digits=(15, 15), window=(3, 3), family=GOVERNMENT_ID),
    detector("es-dni", "pii", r"(?<![\w.-])(?:\d{8}|[XYZ]-?\d{7})-?[A-HJ-NP-TV-Z](?![\w-])",
       validate=check.es_dni_valid, digits=(7, 8), after_letters=True, window=(3, 3),
       run_then=r"(?<=\d{7})-?[A-HJ-NP-TV-Z]", family=GOVERNMENT_ID),
    detector("it-fiscal-code", "pii",
       r"[A-Z](?<![A-Za-z0-9][A-Z])[A-Z]{5}\d\d[A-EHLMPRST]\d\d[A-Z]\d{3}[A-Z](?![A-Za-z0-9])",
       validate=check.it_fiscal_code_valid, family=GOVERNMENT_ID,
       hint=r"[A-Z]{6}[0-9]{2}[A-EHLMPRST][0-9]{2}[A-Z][0-9]{3}[A-Z]", window=(16, 1)),
    detector("nl-bsn", "pii",
       r"(?<![\d.-])(?:\d{9}|\d{4}[ .]\d\d[ .]\d{3}|\d{3}[ .]\d{3}[ .]\d{3})(?![\d-])",
       folded=_BSN_WORDS, window=(60, 2000), validate=check.nl_bsn_valid,
       context=partial(check.named_near, check.BSN_WORDS), family=GOVERNMENT_ID),
    detector("in-aadhaar", "pii", r"(?<![\d-])[2-9]\d{3}([ -]?)\d{4}\1\d{4}(?![\d-])",
       folded=_AADHAAR_WORDS, window=(60, 2000), validate=check.in_aadhaar_valid,
       context=partial(check.named_near, check.AADHAAR_WORDS), family=GOVERNMENT_ID),
    detector("br-cpf", "pii", r"(?<![\d.-])(?:\d{3}\.\d{3}\.\d{3}-\d\d|\d{11})(?![\d-])",
       validate=check.br_cpf_valid, context=check.cpf_in_context, digits=(11, 11),
       window=(3, 3), family=GOVERNMENT_ID),
    detector("passport", "pii", r"(?<![\w-])[A-Z0-9]{6,9}(?![\w-])", folded=_PASSPORT_WORDS,
       window=(100, 2000), validate=check.passport_valid, context=check.passport_in_context,
       family=GOVERNMENT_ID),
    # -- pii.identity
    # far after the word too: the rows of a table under its "dob" heading
    detector("date-of-birth", "pii", _DATE, folded=_BIRTH_WORDS, window=(100, 2000),
       context=check.birth_date_in_context, family=IDENTITY),
    detector("person-name", "pii.extended", rf"{_NAME_LABEL}[\s\"']*{_TITLES}{_NAME}", span=1,
       folded=_NAME_KEYWORDS, window=(0, 80), anchored=True, validate=check.name_valid,
       context=check.name_in_context, family=IDENTITY, kind="person-name",
       # "name" is a label before a quote, a space, ":" or "：" ("?" where Hyperscan reads
       # the text: see KeywordIndex), "-": not "names", "name=", "name_", "name,"
       follows=(("name", r"[\"\s:?-]"),)),
    detector("person-name-cell", "pii.extended", _CELL_NAME, span=1, validate=check.name_valid,
       context=partial(check.name_in_cell, street=re.compile(_STREET, re.ASCII)), family=IDENTITY,
       hint=_CELL_NAME_HINT, window=(160, 1), kind="person-name"),
    detector("person-name-ja", "pii.extended", _JA_NAME_BEFORE, span=1,
       keywords=(*(f"様{end}" for end in "\n\r\t、,。!！ \u3000"), "と申します"), window=(12, 8),
       context=check.ja_name_in_context, family=IDENTITY, kind="person-name"),
    # -- pii.network
    detector("ip-address", "pii", _IP, validate=check.public_ip, context=check.ip_in_context,
       family=NETWORK, hint=_IP_HINT, window=(39, 2)),
)  # fmt: skip
