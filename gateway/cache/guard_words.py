"""Word lists for the false-hit guard (English). Small on purpose: each entry guards a known
way for two close sentences to ask different things."""

import re


def _words(text: str) -> list[str]:
    return text.split()


_UNITS = (
    "km kilometer kilometers kilometre kilometres|m meter meters metre metres|cm centimeter "
    "centimeters centimetre centimetres|mm millimeter millimeters millimetre millimetres|mi "
    "mile miles|ft foot feet|in inch inches|yd yard yards|kg kilogram kilograms kilo kilos|g "
    "gram grams|mg milligram milligrams|lb lbs pound pounds|oz ounce ounces|l liter liters litre "
    "litres|ml milliliter milliliters millilitre millilitres|gal gallon gallons|cup cups|tbsp "
    "tablespoon tablespoons|tsp teaspoon teaspoons|c celsius centigrade|f fahrenheit|k kelvin|"
    "s sec secs second seconds|min mins minute minutes|h hr hrs hour hours|day days|week weeks|"
    "month months|year years|usd $ dollar dollars|eur euro euros|gbp sterling|jpy yen|b byte "
    "bytes|kb kilobyte kilobytes|mb megabyte megabytes|gb gigabyte gigabytes|tb terabyte "
    "terabytes|w watt watts|kw kilowatt kilowatts|kwh|mph|kph kmh|hz hertz|ghz gigahertz|"
    "mhz megahertz|% percent percentage"
)
UNITS = {w: group.split()[0] for group in _UNITS.split("|") for w in group.split()}
# "in" as a unit is far too common a word; "m", "s", "h", "g", "f", "c", "k", "b", "l" alone
# are only units next to a number, which the number check already covers.
for _w in ("in", "m", "s", "h", "g", "f", "c", "k", "b", "l", "min"):
    UNITS.pop(_w, None)

_NUMBERS = (
    "zero 0|one 1|two 2|three 3|four 4|five 5|six 6|seven 7|eight 8|nine 9|ten 10|eleven 11|"
    "twelve 12 dozen|thirteen 13|fourteen 14|fifteen 15|sixteen 16|seventeen 17|eighteen 18|"
    "nineteen 19|twenty 20|thirty 30|forty 40|fifty 50|sixty 60|seventy 70|eighty 80|ninety 90|"
    "hundred 100|thousand 1000|million 1000000|billion 1000000000|first 1|second 2|third 3|"
    "fourth 4|fifth 5|sixth 6|seventh 7|eighth 8|ninth 9|tenth 10|half 0.5|twice 2|double 2|"
    "triple 3"
)
NUMBER_WORDS: dict[str, str] = {}
for _group in _NUMBERS.split("|"):
    _members = _group.split()
    _value = next(w for w in _members if w[0].isdigit())
    for _w in _members:
        if not _w[0].isdigit():
            NUMBER_WORDS[_w] = _value

NEGATIONS = frozenset(
    _words(
        "not no never none nobody nothing neither nor without cannot nowhere against lack lacking "
        "except excluding"
    )
)
_NEGATED = frozenset(
    _words(
        "unsafe impossible illegal impure unhealthy unable unlikely incorrect invalid unknown "
        "unusual irrelevant dishonest disagree unavailable inaccurate insecure unnecessary "
        "unstable untrue unfair unequal illogical immoral improper inefficient incomplete "
        "inconsistent unhappy unsupported unsuitable inappropriate irregular indirect inedible "
        "unsafely"
    )
)


def negated_adjective(word: str) -> bool:
    return word in _NEGATED


OPPOSITES = tuple(
    tuple(p.split("/"))
    for p in _words(
        "increase/decrease increasing/decreasing raise/lower rise/fall before/after above/below "
        "more/less most/least max/min maximum/minimum largest/smallest biggest/smallest "
        "highest/lowest hottest/coldest hot/cold warm/cool true/false buy/sell import/export "
        "add/remove enable/disable open/close start/stop push/pull upload/download encrypt/decrypt "
        "encode/decode north/south east/west left/right up/down include/exclude accept/reject "
        "win/lose advantages/disadvantages advantage/disadvantage pros/cons benefits/drawbacks "
        "first/last oldest/newest old/new older/newer fastest/slowest fast/slow faster/slower "
        "cheapest/expensive cheap/expensive best/worst better/worse positive/negative love/hate "
        "safe/dangerous strong/weak strongest/weakest long/short longest/shortest heavy/light "
        "young/old early/late earliest/latest enter/exit install/uninstall connect/disconnect "
        "lock/unlock login/logout gain/lose gain/loss profit/loss for/against with/without "
        "into/from to/from compress/decompress serialize/deserialize zip/unzip "
        "ascending/descending happy/sad easy/hard easiest/hardest inside/outside internal/external "
        "input/output send/receive borrow/lend"
    )
)

STOPWORDS = frozenset(
    _words(
        "a an the is are was were be been being am do does did doing have has had having i me my "
        "you your yours we our us he she it its they them their this that these those what which "
        "who whom whose when where why how can could would should will shall may might must to of "
        "in on at by for with about as into from up out over under again then once there here all "
        "any both each few some such only own same so than too very just also and or but if while "
        "please tell give show explain write list describe me exactly really thanks thank hi hello "
        "way ways there's it's what's who's how's that's let's s t usually actually kindly in "
        "total some"
    )
)


def stem(word: str) -> str:
    """A crude stem (British -ise spellings, plurals, -ing/-ed), enough to compare words."""
    word = re.sub(r"is(e|es|ed|ing)$", r"iz\1", word)
    for suffix in ("ies", "ing", "es", "ed", "s"):
        if len(word) > len(suffix) + 2 and word.endswith(suffix) and not word.endswith("ss"):
            base = word[: -len(suffix)] + ("y" if suffix == "ies" else "")
            if suffix in ("ing", "ed") and len(base) > 2 and base[-1] == base[-2]:
                base = base[:-1]  # running -> run
            return base
    return word
