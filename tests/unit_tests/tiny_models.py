"""Tiny models built from configs, with tokenizers trained on the fly (no download)."""

import torch

from kard_chain.reranker_model import KardReranker, RerankerConfig


def tiny_encoder(words, dropout=0.1):
    """A 2-layer BERT and a word-level tokenizer over ``words``."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors, trainers
    from transformers import BertConfig, BertModel, PreTrainedTokenizerFast

    tok = Tokenizer(models.WordLevel(unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    tok.train_from_iterator([" ".join(words)], trainers.WordLevelTrainer(special_tokens=specials))
    cls, sep = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1", special_tokens=[("[CLS]", cls), ("[SEP]", sep)]
    )
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=tok, cls_token="[CLS]", sep_token="[SEP]", pad_token="[PAD]",
                                        unk_token="[UNK]", mask_token="[MASK]")
    torch.manual_seed(0)
    config = BertConfig(vocab_size=tok.get_vocab_size(), hidden_size=48, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=96, max_position_embeddings=128, hidden_dropout_prob=dropout,
                        attention_probs_dropout_prob=dropout)
    return BertModel(config), tokenizer


def tiny_reranker(scoring, words):
    """A KardReranker (projection or head of 32) on :func:`tiny_encoder`."""
    return KardReranker(*tiny_encoder(words), RerankerConfig(scoring=scoring, dim=32))
