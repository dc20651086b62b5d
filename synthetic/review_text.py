"""Review sentences for the synthetic generator: templates per topic and polarity, plus slot fillers.

A review is ``[opener] body [closer]``. The body template is chosen by topic and polarity, and its
slots (product, time span, adjectives, courier ...) are filled at random, so a large population
writes many thousands of distinct texts while every text still states its topic and polarity
plainly enough for a sentence encoder to pick up.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

TOPICS: tuple[str, ...] = (
    "delivery", "price", "quality", "support", "sizing", "packaging", "returns", "website",
)
"""Review topics, in the order used by the generator's topic indices."""

CATEGORIES: tuple[str, ...] = (
    "electronics", "fashion", "home", "beauty", "sports", "books", "grocery", "toys",
)
"""Product categories, in the order used by the generator's category indices."""

PRODUCTS: dict[str, tuple[str, ...]] = {
    "electronics": ("headphones", "phone charger", "bluetooth speaker", "smartwatch", "USB-C cable",
                    "webcam", "keyboard", "power bank", "e-reader", "router"),
    "fashion": ("jacket", "pair of jeans", "sneakers", "summer dress", "wool sweater", "boots",
                "t-shirt", "raincoat", "belt", "hoodie"),
    "home": ("frying pan", "duvet cover", "desk lamp", "set of towels", "coffee maker", "kettle",
             "storage boxes", "curtains", "vacuum cleaner", "knife set"),
    "beauty": ("face cream", "shampoo", "perfume", "hair dryer", "lipstick", "sunscreen",
               "beard trimmer", "nail polish set", "body lotion", "serum"),
    "sports": ("yoga mat", "running shoes", "dumbbells", "cycling gloves", "water bottle",
               "tennis racket", "gym bag", "resistance bands", "hiking socks", "fitness tracker"),
    "books": ("cookbook", "novel", "kids' book", "travel guide", "notebook", "comic", "biography",
              "puzzle book", "textbook", "box set"),
    "grocery": ("coffee beans", "olive oil", "tea selection", "snack box", "pasta", "chocolate",
                "spice set", "cereal", "protein bars", "honey"),
    "toys": ("lego set", "board game", "puzzle", "plush bear", "toy car", "doll house", "kite",
             "science kit", "card game", "building blocks"),
}

SLOTS: dict[str, tuple[str, ...]] = {
    "span": ("two days", "three days", "48 hours", "a day", "less than a week", "four days",
             "24 hours", "the promised time", "just over two days", "no time at all"),
    "late": ("a week late", "five days late", "two weeks late", "ten days late", "three days late",
             "almost a month late", "days after the promised date", "over a week late"),
    "courier": ("the courier", "the driver", "the delivery company", "the parcel service",
                "the carrier", "the delivery guy", "the shipping company"),
    "good": ("great", "excellent", "fantastic", "solid", "lovely", "superb", "really good",
             "top-notch", "brilliant", "impressive", "very good", "outstanding"),
    "bad": ("terrible", "awful", "disappointing", "poor", "shoddy", "flimsy", "mediocre",
            "useless", "cheap", "dreadful", "substandard", "frustrating"),
    "very": ("really", "very", "super", "incredibly", "pretty", "quite", "truly", "genuinely"),
    "when": ("week", "month", "weekend", "Monday", "Friday", "spring", "autumn", "year"),
    "wait": ("two hours", "forty minutes", "three days", "a week", "an hour", "ages", "four days"),
    "money": ("money", "cash", "price", "cost"),
}

OPENERS: tuple[str, ...] = (
    "", "", "", "", "Ordered the {product} last {when}.", "Second order from this shop.",
    "Bought this as a gift.", "First time ordering here.", "Update:", "Long-time customer here.",
    "Got the {product} for my partner.", "Quick review:", "Regular buyer.", "Bought the {product}.",
)
CLOSERS_POSITIVE: tuple[str, ...] = (
    "", "", "", "Would buy again.", "Highly recommend!", "Five stars.", "Will order again.",
    "😊", "👍", "Thanks!", "Happy customer.", "Keep it up!", "10/10", "Recommended to friends.",
)
CLOSERS_NEGATIVE: tuple[str, ...] = (
    "", "", "", "Not ordering again.", "Very disappointed.", "Avoid.", "Sort it out.", "😡",
    "Never again.", "I expected better.", "Not happy.", "👎", "Shame.", "Looking elsewhere now.",
)

# (topic, negative) -> body templates; every slot of SLOTS plus {product} may be used.
BODIES: dict[tuple[str, bool], tuple[str, ...]] = {
    ("delivery", False): (
        "Arrived in {span}, {very} fast delivery.",
        "Delivery was quick and {courier} was friendly.",
        "The {product} came in {span}, earlier than expected.",
        "Shipping was {good}, tracking worked the whole way.",
        "Fast shipping, the {product} was at my door in {span}.",
        "{courier} left the parcel exactly where I asked. {good} service.",
        "No complaints about delivery at all, it took {span}.",
        "Next-day delivery actually meant next day. {good}.",
        "Delivered on time and the tracking updates were {very} accurate.",
        "Impressed by how fast the {product} arrived.",
    ),
    ("delivery", True): (
        "The {product} arrived {late}.",
        "Delivery was {late} and nobody told me why.",
        "{courier} never showed up, I had to chase the parcel for days.",
        "Package marked as delivered but it was nowhere to be found.",
        "Tracking said out for delivery for {wait}, then nothing.",
        "Waited {wait} for the {product}, delivery is {bad}.",
        "My order came {late} and the box was soaked.",
        "{courier} left my parcel in the rain. {bad} delivery.",
        "Delivery is {very} unreliable, second time the order was lost.",
        "Still waiting for my {product}, it is already {late}.",
        "The delivery window was missed again, I took a day off for nothing.",
        "Parcel went to the wrong address and {courier} would not help.",
    ),
    ("price", False): (
        "{good} value for the {money}.",
        "Got the {product} on sale, {very} good deal.",
        "Cheaper than anywhere else I looked.",
        "The discount code worked and the price was {good}.",
        "Fair price for a {good} {product}.",
        "Worth every penny.",
        "Prices here are {very} reasonable compared to other shops.",
        "Great deal, paid much less than in the high street for the {product}.",
        "Affordable and the quality matches the price.",
    ),
    ("price", True): (
        "Way too expensive for what you get.",
        "The {product} costs almost double what it did last {when}.",
        "Prices keep going up, not worth the {money} anymore.",
        "Overpriced, found the same {product} cheaper elsewhere.",
        "Shipping fees made the {product} {very} expensive.",
        "No discount, no sale, and the price went up again.",
        "Paid full price and it feels like a rip-off.",
        "The price is {bad} value for a {product} like this.",
        "Used to be affordable, now it is {very} pricey.",
        "Hidden fees at checkout, the final price was a shock.",
    ),
    ("quality", False): (
        "The {product} is {very} well made.",
        "{good} quality, exactly as described.",
        "Love the {product}, it feels {very} sturdy.",
        "The {product} works perfectly, {good} build quality.",
        "Quality exceeded my expectations.",
        "Excellent {product}, using it every day.",
        "The material is {good} and it looks premium.",
        "Exactly what I wanted, the {product} is {good}.",
        "Solid {product}, no defects at all.",
        "Beautiful {product}, the photos do not do it justice.",
    ),
    ("quality", True): (
        "The {product} broke after {wait}.",
        "{bad} quality, nothing like the photos.",
        "The {product} feels {very} cheap.",
        "Stopped working after a few uses, {bad} quality.",
        "The {product} arrived damaged and scratched.",
        "Material is thin and the stitching came apart.",
        "Not as described, the {product} is {bad}.",
        "Defective {product}, the second one I got was {bad} too.",
        "Fell apart within a week.",
        "The {product} smells of chemicals and looks {bad}.",
    ),
    ("support", False): (
        "Customer service sorted my issue in minutes.",
        "Support was {very} helpful when I had a question about the {product}.",
        "The support team replied within {wait} and fixed everything.",
        "{good} customer service, friendly and quick.",
        "Had a problem with my order, the chat agent solved it straight away.",
        "Support went above and beyond, {very} impressed.",
        "Called about the {product} and got a {good} answer right away.",
    ),
    ("support", True): (
        "Customer service never answered my emails.",
        "Waited {wait} on the phone to talk to support.",
        "Support was {bad} and kept sending copy-paste replies.",
        "The chat bot is useless and there is no way to reach a human.",
        "Nobody from support could tell me where my {product} was.",
        "Rude customer service, {very} unhelpful.",
        "Opened three tickets about the {product}, none were answered.",
    ),
    ("sizing", False): (
        "Fits perfectly, true to size.",
        "The size chart is accurate, the {product} fits {very} well.",
        "Ordered my usual size and it fits like a glove.",
        "Great fit and {very} comfortable.",
        "The {product} fits exactly as expected.",
        "Perfect fit, no need to exchange.",
    ),
    ("sizing", True): (
        "Runs {very} small, had to send the {product} back.",
        "The size chart is {bad}, nothing fits.",
        "Way too big even in the smallest size.",
        "The {product} fits terribly, sleeves far too long.",
        "Sizing is all over the place, ordered two sizes and neither fits.",
        "Did not fit at all, {bad} sizing.",
    ),
    ("packaging", False): (
        "Nicely packed, the {product} was well protected.",
        "{good} packaging, no plastic and easy to recycle.",
        "The box was {very} neat, great for a gift.",
        "Packed with care, everything arrived intact.",
        "Lovely packaging, the {product} felt like a present.",
    ),
    ("packaging", True): (
        "The box was crushed and the {product} was damaged.",
        "Way too much plastic for a small {product}.",
        "Packaging was {bad}, items were loose in a huge box.",
        "The {product} came in a torn bag with no protection.",
        "Terrible packaging, the seal was already broken.",
    ),
    ("returns", False): (
        "Returning the {product} was easy and the refund came in {span}.",
        "Hassle-free returns, free label included.",
        "Refund arrived {very} quickly after I sent the {product} back.",
        "The return process is {good}, no questions asked.",
        "Exchanged the {product} without any trouble.",
    ),
    ("returns", True): (
        "Still waiting for my refund after {wait}.",
        "Returning the {product} was a nightmare.",
        "They charged me for the return shipping, {bad} policy.",
        "Sent the {product} back {wait} ago and no refund yet.",
        "The return was rejected for no reason.",
        "Refund process is {very} slow and confusing.",
    ),
    ("website", False): (
        "The app is {very} easy to use.",
        "Checkout was quick and the website is {good}.",
        "Found the {product} in seconds, search works well.",
        "Smooth ordering on the app, {good} experience.",
        "The website is clean and fast.",
    ),
    ("website", True): (
        "The app kept crashing at checkout.",
        "Website is {very} slow and the search is {bad}.",
        "Payment failed three times before it went through.",
        "Could not find the {product} on the app, filters do not work.",
        "The site logged me out twice while ordering.",
        "Checkout is {bad}, had to re-enter my address every time.",
    ),
}

# A few non-English bodies; used occasionally for the topics listed here.
FOREIGN_BODIES: dict[tuple[str, bool], tuple[str, ...]] = {
    ("delivery", False): ("Entrega rápida, todo perfecto.", "Schnelle Lieferung, alles bestens.",
                          "Livraison rapide, très content."),
    ("delivery", True): ("El pedido llegó con una semana de retraso.", "Lieferung kam viel zu spät.",
                         "Colis perdu, livraison catastrophique."),
    ("quality", False): ("Muy buena calidad.", "Sehr gute Qualität.", "Produit de très bonne qualité."),
    ("quality", True): ("Mala calidad, se rompió enseguida.", "Schlechte Qualität, sofort kaputt.",
                        "Qualité décevante."),
}


def compose_reviews(
    topics: np.ndarray,
    negative: np.ndarray,
    categories: np.ndarray,
    rng: np.random.Generator,
    foreign_share: float = 0.01,
) -> list[str]:
    """Write one review text per row.

    Args:
        topics: index into :data:`TOPICS` per review.
        negative: whether each review is a complaint.
        categories: index into :data:`CATEGORIES` of the reviewed order.
        rng: source of randomness (all draws happen here, so equal seeds give equal texts).
        foreign_share: share of reviews written in Spanish, German or French where available.

    Returns:
        The texts, in row order.
    """
    n = len(topics)
    picks = rng.integers(0, 1 << 30, size=(n, len(SLOTS) + 5))
    foreign = rng.random(n) < foreign_share
    slot_names = list(SLOTS)
    texts: list[str] = []
    for i in range(n):
        topic = TOPICS[int(topics[i])]
        neg = bool(negative[i])
        row = picks[i]
        if foreign[i] and (topic, neg) in FOREIGN_BODIES:
            options = FOREIGN_BODIES[(topic, neg)]
            texts.append(options[row[0] % len(options)])
            continue
        products = PRODUCTS[CATEGORIES[int(categories[i])]]
        fill = {name: SLOTS[name][row[j] % len(SLOTS[name])] for j, name in enumerate(slot_names)}
        fill["product"] = products[row[-1] % len(products)]
        bodies = BODIES[(topic, neg)]
        closers = CLOSERS_NEGATIVE if neg else CLOSERS_POSITIVE
        parts = (
            OPENERS[row[-2] % len(OPENERS)].format(**fill),
            bodies[row[-3] % len(bodies)].format(**fill),
            closers[row[-4] % len(closers)],
        )
        texts.append(_SENTENCE_START.sub(_upper, " ".join(p for p in parts if p)))
    return texts


_SENTENCE_START = re.compile(r"(^|[.!?:] )([a-z])")


def _upper(match: re.Match[str]) -> str:
    return match.group(1) + match.group(2).upper()
