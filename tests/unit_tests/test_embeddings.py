"""TransformerEmbeddings against a direct transformers forward pass, and a Chroma store built and reopened with it."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from kard_chain.embeddings import TransformerEmbeddings, embeddings_from_spec, embeddings_spec  # noqa: E402
from kard_chain.records import Passage  # noqa: E402
from tests.unit_tests.tiny_models import tiny_encoder  # noqa: E402

WORDS = "goat milk cheese penguin birds ice copper wire metal tea leaves the a of".split()


@pytest.fixture(scope="module")
def encoder_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("encoder")
    model, tokenizer = tiny_encoder(WORDS, dropout=0.0)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def test_vectors_equal_a_direct_forward_pass_with_mean_pooling(encoder_dir):
    from transformers import AutoModel, AutoTokenizer

    texts = ["goat milk", "the penguin of the ice birds", "copper"]  # different lengths: padding in play
    got = np.array(TransformerEmbeddings(model=str(encoder_dir), batch_size=2).embed_documents(texts))
    model, tok = AutoModel.from_pretrained(encoder_dir).eval(), AutoTokenizer.from_pretrained(encoder_dir)
    for text, vector in zip(texts, got):  # one text at a time: no padding at all
        with torch.no_grad():
            tokens = model(**tok(text, return_tensors="pt")).last_hidden_state[0]
        expected = tokens.mean(0) / tokens.mean(0).norm()
        np.testing.assert_allclose(vector, expected.numpy(), atol=1e-5)
    assert np.allclose(np.linalg.norm(got, axis=1), 1)
    assert TransformerEmbeddings(model=str(encoder_dir)).embed_query("goat milk") == pytest.approx(got[0].tolist(), abs=1e-6)


def test_specs_round_trip(encoder_dir):
    assert embeddings_spec(embeddings_from_spec("hashing", 64)) == {"embeddings": "hashing", "size": 64}
    assert embeddings_spec(embeddings_from_spec(str(encoder_dir))) == {"embeddings": str(encoder_dir)}


def test_kard_index_builds_a_chroma_store_with_an_encoder_and_search_reopens_it(encoder_dir, tmp_path, capsys):
    pytest.importorskip("chromadb")
    from kard_chain.cli import main

    corpus = tmp_path / "c.jsonl"
    passages = [Passage(id=f"p{i}", text=t) for i, t in enumerate(["goat milk cheese", "penguin birds ice", "copper wire metal"])]
    corpus.write_text("".join(p.model_dump_json() + "\n" for p in passages))
    out = tmp_path / "chroma"
    assert main(["index", "--backend", "chroma", "--embedding", str(encoder_dir), "--corpus", str(corpus), "--out", str(out)]) == 0
    assert f"embedding: {encoder_dir}" in capsys.readouterr().out
    assert main(["search", "--index", str(out), "-k", "1", "goat milk cheese"]) == 0
    assert "[p0]" in capsys.readouterr().out
    code = main(["index", "--backend", "chroma", "--embedding", "hashing", "--corpus", str(corpus), "--out", str(out)])
    assert code == 2 and "embeddings" in capsys.readouterr().err  # another embedding into the same store: refused
