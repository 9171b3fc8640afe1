"""A small knowledge-copy task: each made-up entity has a colour that only its passage states."""

import json
import random

from kard_chain.records import Example, Passage

COLOURS = {"A": "red", "B": "blue", "C": "green", "D": "yellow"}


def copy_task(n_train=240, n_test=40, seed=0):
    """(train examples, test examples, passages); test entities never occur in training."""
    rng = random.Random(seed)
    letters = "bdfgklmnprstvz"
    names = set()
    while len(names) < n_train + n_test:
        names.add("".join(rng.choice(letters) + rng.choice("aeiou") for _ in range(3)))
    examples, passages = [], []
    for i, name in enumerate(sorted(sorted(names), key=lambda _: rng.random())):  # sorted first: a set's order changes per process
        letter = rng.choice(sorted(COLOURS))
        passages.append(Passage(id=f"p{i}", title=name, text=f"the {name} is {COLOURS[letter]} ."))
        examples.append(Example(id=f"q{i}", question=f"what colour is the {name} ?", options=dict(COLOURS), answer=letter,
                                reference_rationale=f"the {name} is {COLOURS[letter]} .", evidence_ids=[f"p{i}"]))
    return examples[:n_train], examples[n_train:], passages


def write_jsonl(path, records):
    path.write_text("".join(json.dumps(r.model_dump(mode="json")) + "\n" for r in records))
    return path


def write_copy_task(folder, n_train, n_test):
    """The task as files in ``folder``: ``train.jsonl``, ``test.jsonl``, ``passages.jsonl`` and a BM25 ``index/``."""
    from kard_chain import BM25Retriever

    train, test, passages = copy_task(n_train=n_train, n_test=n_test)
    for name, records in (("train", train), ("test", test), ("passages", passages)):
        write_jsonl(folder / f"{name}.jsonl", records)
    BM25Retriever.build(passages, folder / "index", show_progress=False)
    return train, test, passages
