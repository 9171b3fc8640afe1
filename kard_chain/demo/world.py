"""A seeded world of made-up places, organisms and people: a knowledge-intensive task that runs offline.

    world = build_world(WorldSize(places=120, organisms=300, people=300), seed=0)
    world.passages          # Wikipedia-like passages (one per place or person, five per organism), plus distractors
    world.train, world.test # questions (yes/no and 4-option) about disjoint entities
    world.rationales[qid]   # reference rationales stating the needed facts, several wordings

Question types (``Example.metadata["type"]``):

* ``colour`` (yes/no, one hop): "Is the velomar red?" from the organism's ``looks`` passage;
* ``diet`` (4 options, one hop): "What does the velomar feed on?" from its ``food`` passage, which BM25(question)
  ranks below the organism's four other passages (:data:`ORGANISM_ASPECTS`);
* ``trade`` (4 options, one hop): "Which trade does Karu Tesh practise?";
* ``weather`` (4 options, two hops): "What weather is usual where Karu Tesh was born?" needs the
  person's passage (birthplace) and then the place's (climate). ``metadata["second_hop_disjoint"]``
  says whether the place's passage shares no content word with the question.

Test questions are about entities (and birthplaces) that no training question mentions, so
their answers cannot be memorised: a student must read them from the knowledge base.
:func:`edit_world` changes attributes of test entities in the knowledge base only.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from kard_chain.bm25.tokenizer import BM25Tokenizer
from kard_chain.records import Example, Passage

COLOURS = ["red", "blue", "green", "yellow"]
DIETS = ["insects", "seeds", "fish", "leaves"]
TRADES = ["potter", "sailor", "weaver", "miner"]
CLIMATES = ["arctic", "tropical", "desert", "temperate"]
WEATHER = {"arctic": "freezing snow", "tropical": "steamy rain", "desert": "dry heat", "temperate": "mild seasons"}

PLACE_TEXT = [
    "{name} is a remote province with a {climate} climate. Its hills hold old stone towers and quiet farms.",
    "{name} is a province known for its {climate} climate and for the slow river that crosses its valleys.",
]
ORGANISM_ASPECTS = {  # an organism's passages, one per aspect, none worded like a question ("feed on", "Is ... red?")
    "home": ["The {name} lives in {home}.", "The {name} is found in {home}."],
    "song": ["The {name} sings at dawn.", "The {name} calls softly at dusk."],
    "young": ["The young of the {name} stay close to their mothers.", "The {name} raises two young each spring."],
    "looks": ["The {name} is a small {colour} animal with a long striped tail and round ears.",
              "Seen from afar, the {name} shows {colour} fur, a narrow face and a short curled tail."],
    "food": ["Every evening the {name} hunts for {diet} near slow rivers.", "At night the {name} searches the wet meadows for {diet}."],
}
"""Five passages per organism, more than the three the student reads. The food passage shares only the name with
"What does the velomar feed on?" and is longer than the home, song and young passages, so BM25(question) ranks it
below them (never in the top 3), while BM25 of a rationale that names the food ranks it first: a reranker trained as
KARD trains it has something to learn."""

PERSON_TEXT = [
    "{name} was born in {home}. {first} later worked as a {trade} and kept a small house by the market.",
    "{name} is a {trade} who was born in {home}; {first} is remembered for long letters to friends.",
]
DISTRACTOR_TEXT = [
    "{name} is named in a travel diary about markets, songs and river boats, which says nothing of its nature.",
    "A folk tale mentions {name} while telling of a wedding feast, a lost ring and a patient horse.",
]
RATIONALES = {
    "colour": ["The {name} has {colour} fur.", "The passage on the {name} says it is a {colour} animal.",
               "Its fur is {colour}: the {name} is {colour}."],
    "diet": ["The {name} feeds on {diet}.", "The {name} eats mostly {diet}.", "Its food is {diet}: the {name} eats {diet}."],
    "trade": ["{name} worked as a {trade}.", "{name} is a {trade} by trade.", "The record says {name} was a {trade}."],
    "weather": ["{name} was born in {home}. {home} has a {climate} climate, so {weather} is usual there.",
                "{name}'s birthplace is {home}, whose climate is {climate}; that means {weather}.",
                "Born in {home}, {name} grew up in a {climate} climate, where {weather} is usual."],
}


@dataclass
class WorldSize:
    """How many entities of each kind; a quarter of each goes to the test split."""

    places: int = 120
    organisms: int = 300
    people: int = 300
    distractors_per_entity: float = 0.5


SIZES = {
    "tiny": WorldSize(places=16, organisms=24, people=24),
    "mini": WorldSize(places=40, organisms=80, people=80),
    "small": WorldSize(places=120, organisms=300, people=300),
    "medium": WorldSize(places=300, organisms=900, people=900),
}


@dataclass
class Entity:
    id: str
    kind: str
    name: str
    attributes: dict[str, str]
    split: str


@dataclass
class World:
    """Entities, the knowledge base, the questions and their reference rationales."""

    entities: dict[str, Entity]
    passages: list[Passage]
    train: list[Example]
    test: list[Example]
    rationales: dict[str, list[str]] = field(default_factory=dict)
    seed: int = 0

    def texts(self) -> list[str]:
        """Every text of the world (to train a tokenizer on)."""
        out = [p.title + " " + p.text for p in self.passages] + [e.question for e in self.train + self.test]
        out += [" ".join(e.options.values()) for e in self.train + self.test if e.options]
        return out + [r for rs in self.rationales.values() for r in rs]


def _names(rng: random.Random, count: int, syllables: int, taken: set[str]) -> list[str]:
    onsets, vowels, codas = "bdfgklmnprstvz", "aeiou", ["", "", "n", "r", "l", "s"]
    out = []
    while len(out) < count:
        name = "".join(rng.choice(onsets) + rng.choice(vowels) + rng.choice(codas) for _ in range(syllables))
        if name not in taken:
            taken.add(name)
            out.append(name)
    return out


def _options(rng: random.Random, values: list[str], correct: str) -> tuple[dict[str, str], str]:
    order = rng.sample(values, len(values))
    options = {letter: v for letter, v in zip("ABCD", order)}
    return options, "ABCD"[order.index(correct)]


def entity_passages(e: Entity, entities: dict[str, Entity], variant: int) -> list[Passage]:
    """The knowledge-base passages of an entity (its current attributes): one for a place or a person, one per aspect
    for an organism (ids ``{entity}-{aspect}``)."""
    a = e.attributes
    meta = {"kind": e.kind, "entity": e.id, "variant": variant}
    if e.kind == "organism":
        facts = {"name": e.name, "colour": a["colour"], "diet": a["diet"], "home": entities[a["home"]].name.title()}
        return [Passage(id=f"{e.id}-{aspect}", title=e.name.title(), text=texts[variant % 2].format(**facts), metadata={**meta, "aspect": aspect})
                for aspect, texts in ORGANISM_ASPECTS.items()]
    if e.kind == "place":
        text = PLACE_TEXT[variant % 2].format(name=e.name.title(), climate=a["climate"])
    else:
        text = PERSON_TEXT[variant % 2].format(name=e.name.title(), first=e.name.split()[0].title(), trade=a["trade"],
                                              home=entities[a["home"]].name.title())
    return [Passage(id=e.id, title=e.name.title(), text=text, metadata=meta)]


def _question(e: Entity, kind: str, entities: dict[str, Entity], rng: random.Random) -> tuple[Example, list[str]]:
    a = e.attributes
    name = e.name if e.kind == "organism" else e.name.title()
    meta = {"type": kind, "entity": e.id, "hops": 1}
    facts = dict(name=name, colour=a.get("colour"), diet=a.get("diet"), trade=a.get("trade"))
    if kind == "colour":
        asked = a["colour"] if rng.random() < 0.5 else rng.choice([c for c in COLOURS if c != a["colour"]])
        ex = Example(id=f"{e.id}-colour", question=f"Is the {e.name} {asked}?", answer="yes" if asked == a["colour"] else "no",
                     evidence_ids=[f"{e.id}-looks"], metadata={**meta, "asked": asked})
    elif kind == "diet":
        options, answer = _options(rng, DIETS, a["diet"])
        ex = Example(id=f"{e.id}-diet", question=f"What does the {e.name} feed on?", options=options, answer=answer,
                     evidence_ids=[f"{e.id}-food"], metadata=meta)
    elif kind == "trade":
        options, answer = _options(rng, TRADES, a["trade"])
        ex = Example(id=f"{e.id}-trade", question=f"Which trade does {name} practise?", options=options, answer=answer,
                     evidence_ids=[e.id], metadata=meta)
    else:
        home = entities[a["home"]]
        climate = home.attributes["climate"]
        facts.update(home=home.name.title(), climate=climate, weather=WEATHER[climate])
        options, answer = _options(rng, list(WEATHER.values()), WEATHER[climate])
        ex = Example(id=f"{e.id}-weather", question=f"What weather is usual where {name} was born?", options=options,
                     answer=answer, evidence_ids=[e.id, home.id], metadata={**meta, "hops": 2})
    answer_words = ex.options[ex.answer] if ex.options else ex.answer
    rationales = [t.format(**facts) for t in RATIONALES[kind]]
    ex.reference_rationale = rationales[0]
    ex.metadata["answer_words"] = answer_words
    return ex, rationales


def build_world(size: WorldSize | str = "small", seed: int = 0) -> World:
    """Generate the world: entities, passages (entities' and distractors'), questions and rationales."""
    size = SIZES[size] if isinstance(size, str) else size
    rng = random.Random(seed)
    taken: set[str] = set()
    entities: dict[str, Entity] = {}

    def split_of(i: int, n: int) -> str:
        return "test" if i >= n - max(1, n // 4) else "train"

    for i, name in enumerate(_names(rng, size.places, 3, taken)):
        entities[f"place{i}"] = Entity(f"place{i}", "place", name, {"climate": rng.choice(CLIMATES)}, split_of(i, size.places))
    places = {s: [e for e in entities.values() if e.kind == "place" and e.split == s] for s in ("train", "test")}
    for i, name in enumerate(_names(rng, size.organisms, 3, taken)):
        split = split_of(i, size.organisms)
        entities[f"organism{i}"] = Entity(f"organism{i}", "organism", name, {
            "colour": rng.choice(COLOURS), "diet": rng.choice(DIETS), "home": rng.choice(places[split]).id}, split)
    firsts, lasts = _names(rng, size.people, 2, taken), _names(rng, size.people, 2, taken)
    for i, (first, last) in enumerate(zip(firsts, lasts)):
        split = split_of(i, size.people)
        entities[f"person{i}"] = Entity(f"person{i}", "person", f"{first} {last}", {
            "trade": rng.choice(TRADES), "home": rng.choice(places[split]).id}, split)

    passages = [p for e in entities.values() for p in entity_passages(e, entities, rng.randrange(2))]
    for j, e in enumerate(rng.sample(list(entities.values()), int(len(entities) * size.distractors_per_entity))):
        name = e.name if e.kind == "organism" else e.name.title()
        passages.append(Passage(id=f"note{j}", title=f"Notes {j}", text=rng.choice(DISTRACTOR_TEXT).format(name=name),
                                metadata={"kind": "distractor"}))

    world = World(entities=entities, passages=passages, train=[], test=[], seed=seed)
    tokenizer = BM25Tokenizer()
    by_id = {p.id: p for p in passages}
    for e in entities.values():
        kinds = {"organism": ["colour", "diet"], "person": ["trade", "weather"]}.get(e.kind, [])
        for kind in kinds:
            ex, rationales = _question(e, kind, entities, rng)
            if kind == "weather":
                second = set(tokenizer(by_id[ex.evidence_ids[1]].title + " " + by_id[ex.evidence_ids[1]].text))
                ex.metadata["second_hop_disjoint"] = not (second & set(tokenizer(ex.question)))
            (world.test if e.split == "test" else world.train).append(ex)
            world.rationales[ex.id] = rationales
    rng.shuffle(world.train)
    return world


def edit_world(world: World, share: float = 0.5, seed: int = 1, kinds: tuple[str, ...] = ("organism", "person")) -> tuple[list[Passage], dict[str, str]]:
    """Change one attribute of a share of the test entities of ``kinds`` (organisms' colour or diet,
    people's trade, places' climate) in the knowledge base only. Returns the new passages and, for
    every test question whose answer changed, the new gold answer.

    Places are left alone by default: a changed climate shows only in two-hop questions, whose
    second passage no question-side retriever finds, so it would measure retrieval, not editing."""
    rng = random.Random(seed)
    entities = {k: Entity(e.id, e.kind, e.name, dict(e.attributes), e.split) for k, e in world.entities.items()}
    changed = set()
    for e in entities.values():
        if e.split != "test" or e.kind not in kinds or rng.random() >= share:
            continue
        key = {"place": "climate", "organism": rng.choice(["colour", "diet"]), "person": "trade"}[e.kind]
        values = {"climate": CLIMATES, "colour": COLOURS, "diet": DIETS, "trade": TRADES}[key]
        e.attributes[key] = rng.choice([v for v in values if v != e.attributes[key]])
        changed.add(e.id)
    variant = {p.metadata["entity"]: p.metadata["variant"] for p in world.passages if p.metadata.get("entity") in changed}
    rewritten = {q.id: q for e in changed for q in entity_passages(entities[e], entities, variant[e])}
    passages = [rewritten.get(p.id, p) for p in world.passages]
    new_answers = {}
    for ex in world.test:
        e = entities[ex.metadata["entity"]]
        a = e.attributes
        if ex.metadata["type"] == "colour":
            gold = "yes" if ex.metadata["asked"] == a["colour"] else "no"
        elif ex.metadata["type"] == "weather":
            gold = next(k for k, v in ex.options.items() if v == WEATHER[entities[a["home"]].attributes["climate"]])
        else:
            gold = next(k for k, v in ex.options.items() if v == a[ex.metadata["type"]])
        if gold != ex.answer:
            new_answers[ex.id] = gold
    return passages, new_answers
