"""A byte-level tokenizer built locally with `tokenizers`: no download, every byte encodable.

The vocabulary is the 256 byte symbols of GPT-2's byte-level alphabet plus <bos>, <eos>, <pad>.
No merges: one token per byte keeps it tiny, deterministic and able to round-trip any text.
"""

from __future__ import annotations

from pathlib import Path

BOS, EOS, PAD = "<bos>", "<eos>", "<pad>"
# A plain role-tagged chat format (the model is random, so any fixed format serves); list
# contents are joined text parts. Applied with the tokenizer's own `apply_chat_template`.
CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{% for message in messages %}"
    "{% if message['content'] is string %}{% set text = message['content'] %}"
    "{% else %}{% set text = message['content'] | map(attribute='text') | join('') %}{% endif %}"
    "<|{{ message['role'] }}|>\n{{ text }}\n"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)
SPECIAL_TOKENS = (BOS, EOS, PAD)
VOCAB_SIZE = 256 + len(SPECIAL_TOKENS)


def build_tokenizer() -> object:
    """A transformers fast tokenizer (ids 0-255 bytes, then the special tokens)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    alphabet = pre_tokenizers.ByteLevel.alphabet()
    byte_symbols = sorted(alphabet, key=lambda ch: _byte_of(ch))
    vocab = {sym: i for i, sym in enumerate(byte_symbols)}
    for offset, tok in enumerate(SPECIAL_TOKENS):
        vocab[tok] = 256 + offset
    core = Tokenizer(models.BPE(vocab=vocab, merges=[], unk_token=None))
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    core.decoder = decoders.ByteLevel()
    core.add_special_tokens(list(SPECIAL_TOKENS))
    return PreTrainedTokenizerFast(
        tokenizer_object=core,
        bos_token=BOS,
        eos_token=EOS,
        pad_token=PAD,
        padding_side="left",
        model_max_length=2048,
        clean_up_tokenization_spaces=False,
        chat_template=CHAT_TEMPLATE,
    )


def _byte_of(symbol: str) -> int:
    """Inverse of GPT-2's bytes_to_unicode for one symbol."""
    printable = (
        list(range(ord("!"), ord("~") + 1))
        + list(range(ord("¡"), ord("¬") + 1))
        + list(range(ord("®"), ord("ÿ") + 1))
    )
    code = ord(symbol)
    if code in printable:
        return code
    others = [b for b in range(256) if b not in printable]
    return others[code - 256]


def save_tokenizer(out_dir: Path) -> None:
    """Write the tokenizer so `AutoTokenizer.from_pretrained(out_dir)` loads it offline, its
    chat template in tokenizer_config.json (the form every transformers and vLLM release
    reads; newer ones also read chat_template.jinja)."""
    tok = build_tokenizer()
    tok.save_pretrained(str(out_dir), save_jinja_files=False)  # type: ignore[attr-defined]
