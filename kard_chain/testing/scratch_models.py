"""Models built from a config, with a tokenizer trained on your own text: no download.

For tests, the offline demo and experiments on a laptop::

    tokenizer = word_tokenizer(texts)                # word-level, trained on the texts
    model = scratch_t5(tokenizer, d_model=128, layers=3)
    model.save_pretrained("student0/"); tokenizer.save_pretrained("student0/")
    # then: kard train-student --model student0/ ...
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

SPECIALS = ["<pad>", "</s>", "<unk>"]


def word_tokenizer(texts: Iterable[str], min_frequency: int = 1, max_vocab: int = 32000) -> Any:
    """A word-level fast tokenizer (lower-cased words and punctuation) trained on ``texts``;
    ``<pad>`` is id 0 and ``</s>`` is appended to every encoded text, as T5 expects."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.WordLevel(unk_token="<unk>"))
    tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.decoder = decoders.WordPiece(prefix="##")  # joins words with spaces
    trainer = trainers.WordLevelTrainer(special_tokens=SPECIALS, min_frequency=min_frequency, vocab_size=max_vocab)
    tok.train_from_iterator(texts, trainer)
    tok.post_processor = processors.TemplateProcessing(single="$A </s>", special_tokens=[("</s>", tok.token_to_id("</s>"))])
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", eos_token="</s>", unk_token="<unk>")


def scratch_t5(tokenizer: Any, d_model: int = 128, layers: int = 3, heads: int = 4, d_ff: int | None = None,
               dropout: float = 0.1, seed: int = 0) -> Any:
    """A randomly initialised ``T5ForConditionalGeneration`` sized for ``tokenizer``."""
    import torch
    from transformers import T5Config, T5ForConditionalGeneration

    torch.manual_seed(seed)
    config = T5Config(
        vocab_size=len(tokenizer), d_model=d_model, d_kv=d_model // heads, d_ff=d_ff or 4 * d_model, num_layers=layers,
        num_decoder_layers=layers, num_heads=heads, dropout_rate=dropout, pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id, decoder_start_token_id=tokenizer.pad_token_id, feed_forward_proj="relu",
        tie_word_embeddings=True,
    )
    return T5ForConditionalGeneration(config)


def scratch_decoder(tokenizer: Any, hidden: int = 64, layers: int = 2, heads: int = 4, seed: int = 0) -> Any:
    """A randomly initialised Llama-architecture ``LlamaForCausalLM`` (SmolLM2's shape, scaled down) sized for
    ``tokenizer``: a decoder-only student."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=hidden, intermediate_size=2 * hidden, num_hidden_layers=layers,
        num_attention_heads=heads, num_key_value_heads=heads, max_position_embeddings=1024, tie_word_embeddings=True,
        pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id, bos_token_id=tokenizer.eos_token_id,
    )
    return LlamaForCausalLM(config)


def scratch_bert(texts: Iterable[str], hidden: int = 48, layers: int = 2, heads: int = 2, dropout: float = 0.1,
                 max_positions: int = 128, seed: int = 0) -> tuple[Any, Any]:
    """A randomly initialised ``BertModel`` and a word-level ``[CLS] ... [SEP]`` tokenizer trained on
    ``texts``: an encoder for the reranker where no pretrained one is installed."""
    import torch
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import BertConfig, BertModel, PreTrainedTokenizerFast

    tok = Tokenizer(models.WordLevel(unk_token="[UNK]"))
    tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    tok.train_from_iterator(texts, trainers.WordLevelTrainer(special_tokens=specials))
    cls, sep = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1", special_tokens=[("[CLS]", cls), ("[SEP]", sep)]
    )
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=tok, cls_token="[CLS]", sep_token="[SEP]", pad_token="[PAD]",
                                        unk_token="[UNK]", mask_token="[MASK]",  # segment ids, as BERT's own tokenizers give
                                        model_input_names=["input_ids", "token_type_ids", "attention_mask"])
    torch.manual_seed(seed)
    config = BertConfig(vocab_size=tok.get_vocab_size(), hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=heads,
                        intermediate_size=2 * hidden, max_position_embeddings=max_positions, hidden_dropout_prob=dropout,
                        attention_probs_dropout_prob=dropout)
    return BertModel(config), tokenizer
