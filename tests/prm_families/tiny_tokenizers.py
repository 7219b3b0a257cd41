"""Tokenizers for the tiny PRM checkpoints: the real Mistral-7B one, and small BPEs of each family's shape.

Math-Shepherd's tokenizer is Mistral-7B-v0.1's sentencepiece model, which PyPI `mistral-common` ships
byte-identical (sha256 below), so its tag and label ids are the real ones. No PyPI package ships the
Llama-3.1 or Qwen2.5 tokenizers, so those families get a small byte-level BPE trained here on a few
lines of math text, with the family's pre-tokenizer regex, special tokens and a chat template of the
family's shape (their ids are small, not the real 128000+/151643+ ones).
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import struct
from collections.abc import Iterator
from pathlib import Path

from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
from tokenizers import trainers as bpe_trainers
from transformers import LlamaTokenizer, PreTrainedTokenizerBase, PreTrainedTokenizerFast
from transformers.tokenization_utils_base import generate_merges

MISTRAL_SP_SHA256 = "dadfd56d766715c61d2ef780a525ab43b8e6da4de6865bda3d95fdef5e134055"
MISTRAL_COMMON_HINT = (
    "needs PyPI mistral-common (it ships Mistral-7B-v0.1's tokenizer.model): "
    "pip install 'mistral-common==1.8.5'"
)

# Pre-tokenizer regexes of the two byte-level families (Llama-3 groups digits by three, Qwen2 by one).
LLAMA3_SPLIT = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}"
    r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
QWEN2_SPLIT = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}"
    r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)

LLAMA3_SPECIALS = [
    "<|begin_of_text|>",
    "<|end_of_text|>",
    "<|start_header_id|>",
    "<|end_header_id|>",
    "<|eom_id|>",
    "<|eot_id|>",
    "<|python_tag|>",
]
QWEN25_SPECIALS = [
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|object_ref_start|>",
    "<|object_ref_end|>",
    "<|box_start|>",
    "<|box_end|>",
    "<|quad_start|>",
    "<|quad_end|>",
]
QWEN_PRM_STEP_TOKEN = "<extra_0>"

# Llama-3.1-Instruct's template shape: a system header with the knowledge/today dates is always
# rendered (even with no system message), each turn is header + trimmed content + <|eot_id|>.
LLAMA31_CHAT_TEMPLATE = (
    r"""{{- bos_token }}"""
    r"""{%- if messages[0]['role'] == 'system' %}"""
    r"""{%- set system_message = messages[0]['content']|trim %}{%- set messages = messages[1:] %}"""
    r"""{%- else %}{%- set system_message = "" %}{%- endif %}"""
    r"""{{- "<|start_header_id|>system<|end_header_id|>\n\n" }}"""
    r"""{{- "Cutting Knowledge Date: December 2023\n" }}{{- "Today Date: 26 Jul 2024\n\n" }}"""
    r"""{{- system_message }}{{- "<|eot_id|>" }}"""
    r"""{%- for message in messages %}"""
    r"""{{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'"""
    r""" + message['content'] | trim + '<|eot_id|>' }}"""
    r"""{%- endfor %}"""
    r"""{%- if add_generation_prompt %}{{- '<|start_header_id|>assistant<|end_header_id|>\n\n' }}"""
    r"""{%- endif %}"""
)

# Qwen2.5-Math-Instruct's template shape: a default \boxed{} system prompt when none is given.
QWEN25_MATH_CHAT_TEMPLATE = (
    r"""{%- if messages[0]['role'] == 'system' %}"""
    r"""{{- '<|im_start|>system\n' + messages[0]['content'] + '<|im_end|>\n' }}"""
    r"""{%- else %}"""
    r"""{{- '<|im_start|>system\nPlease reason step by step, and put your final answer"""
    r""" within \\boxed{}.<|im_end|>\n' }}"""
    r"""{%- endif %}"""
    r"""{%- for message in messages %}"""
    r"""{%- if not (loop.first and message['role'] == 'system') %}"""
    r"""{{- '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>\n' }}"""
    r"""{%- endif %}{%- endfor %}"""
    r"""{%- if add_generation_prompt %}{{- '<|im_start|>assistant\n' }}{%- endif %}"""
)

# A few lines of math text so the BPE learns whole tokens for the tags, labels and "\n\n".
_CORPUS = [
    "Janet's ducks lay 16 eggs per day. She eats three for breakfast every morning. ки\n",
    "Step 1: She has 16 - 3 = 13 eggs left. ки\nStep 2: She sells 13 * 2 = 26 dollars. ки\n",
    "Step 3: The answer is: 26 ки\n\nThe total is 5 + 8 = 13 and 13 - 4 = 9.\n\n",
    "How many apples are left? Please reason step by step, and put your final answer.\n\n",
    "Mia buys 3 boxes with 8 pens each. She gives away 5 pens. How many pens are left? + -\n\n",
    "user assistant system + - + - The answer is 19.\n",
]


def mistral_sentencepiece_path() -> Path | None:
    """Mistral-7B-v0.1's tokenizer.model inside an installed mistral-common, or None.

    Located without importing mistral_common (its import needs pydantic-extra-types, pycountry...).
    """
    spec = importlib.util.find_spec("mistral_common")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / "data" / "tokenizer.model.v1"
    return path if path.is_file() else None


def _varint(buf: bytes, i: int) -> tuple[int, int]:
    shift = value = 0
    while True:
        byte = buf[i]
        i += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, i
        shift += 7


def _proto_fields(buf: bytes) -> Iterator[tuple[int, int | bytes]]:
    """(field number, value) of one protobuf message; varints as int, everything else as bytes."""
    i = 0
    while i < len(buf):
        key, i = _varint(buf, i)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, i = _varint(buf, i)
        elif wire == 1:
            value, i = buf[i : i + 8], i + 8
        elif wire == 2:
            size, i = _varint(buf, i)
            value, i = buf[i : i + size], i + size
        elif wire == 5:
            value, i = buf[i : i + 4], i + 4
        else:
            raise ValueError(f"unsupported protobuf wire type {wire}")
        yield number, value


def read_sentencepiece_pieces(path: Path) -> list[tuple[str, float, int]]:
    """(piece, score, type) of every piece of a sentencepiece ModelProto (field 1), in id order.

    A small reader so neither `sentencepiece` nor `protobuf` is needed; type 1 normal, 2 unknown,
    3 control, 6 byte.
    """
    pieces = []
    for number, value in _proto_fields(path.read_bytes()):
        if number != 1:
            continue
        piece, score, kind = "", 0.0, 1
        for sub, sub_value in _proto_fields(value):
            if sub == 1:
                piece = sub_value.decode("utf-8")
            elif sub == 2:
                score = struct.unpack("<f", sub_value)[0]
            elif sub == 3:
                kind = sub_value
        pieces.append((piece, score, kind))
    return pieces


@functools.lru_cache(maxsize=2)
def _sentencepiece_bpe(path: str) -> tuple[dict[str, int], list[tuple[str, str]]]:
    """Vocab and merges of Mistral's sentencepiece BPE (sha256-checked), parsed once per path."""
    data = Path(path).read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    if digest != MISTRAL_SP_SHA256:
        raise ValueError(f"{path}: sha256 {digest} is not Mistral-7B-v0.1's {MISTRAL_SP_SHA256}")
    vocab = {
        piece: i for i, (piece, _score, _kind) in enumerate(read_sentencepiece_pieces(Path(path)))
    }
    return vocab, generate_merges(vocab)


def mistral_tokenizer(path: Path | None = None) -> PreTrainedTokenizerBase:
    """Mistral-7B-v0.1's tokenizer as a HF LlamaTokenizer (BPE + byte fallback, BOS added).

    The same vocab and merge order transformers' own sentencepiece conversion produces; checked by
    the tests against the ids the Math-Shepherd card prints (12902, 648, 387).
    """
    path = path or mistral_sentencepiece_path()
    if path is None:
        raise FileNotFoundError(f"Mistral tokenizer not found: {MISTRAL_COMMON_HINT}")
    vocab, merges = _sentencepiece_bpe(str(path))
    return LlamaTokenizer(
        vocab=dict(vocab),
        merges=list(merges),
        unk_token="<unk>",
        bos_token="<s>",
        eos_token="</s>",
        add_bos_token=True,
        add_eos_token=False,
    )


def _small_bpe(split_regex: str, specials: list[str], *, nfc: bool, vocab_size: int) -> Tokenizer:
    """A byte-level BPE trained on _CORPUS, special tokens appended after the learned vocab."""
    tok = Tokenizer(models.BPE())
    if nfc:
        tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(split_regex), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    tok.decoder = decoders.ByteLevel()
    trainer = bpe_trainers.BpeTrainer(
        vocab_size=vocab_size,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        special_tokens=[],
        show_progress=False,
    )
    tok.train_from_iterator(_CORPUS * 8, trainer=trainer)
    tok.add_special_tokens(specials)
    return tok


def llama3_tokenizer(*, instruct: bool, vocab_size: int = 512) -> PreTrainedTokenizerBase:
    """A small tokenizer of Llama-3.1's shape: BOS <|begin_of_text|> added, header/eot tokens.

    instruct=True (RLHFlow, from Llama-3.1-8B-Instruct): eos <|eot_id|> and the 3.1 chat template;
    False (ER-PRM, from the base Llama-3.1-8B): eos <|end_of_text|>, no chat template.
    """
    tok = _small_bpe(LLAMA3_SPLIT, LLAMA3_SPECIALS, nfc=False, vocab_size=vocab_size)
    bos = "<|begin_of_text|>"
    tok.post_processor = processors.TemplateProcessing(
        single=f"{bos} $A",
        pair=f"{bos} $A {bos} $B",
        special_tokens=[(bos, tok.token_to_id(bos))],
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token=bos,
        eos_token="<|eot_id|>" if instruct else "<|end_of_text|>",
        chat_template=LLAMA31_CHAT_TEMPLATE if instruct else None,
    )


def qwen25_tokenizer(*, bos_token: str | None, with_step_token: bool) -> PreTrainedTokenizerBase:
    """A small tokenizer of Qwen2.5-Math's shape: no BOS added, <|im_start|>/<|im_end|> turns.

    Qwen2.5-Math-PRM: bos_token None and `<extra_0>` as a special token; Skywork-o1-Open-PRM:
    bos_token "<|im_start|>" (its special_tokens_map.json), no `<extra_0>`.
    """
    specials = QWEN25_SPECIALS + ([QWEN_PRM_STEP_TOKEN] if with_step_token else [])
    tok = _small_bpe(QWEN2_SPLIT, specials, nfc=True, vocab_size=512)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token=bos_token,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        chat_template=QWEN25_MATH_CHAT_TEMPLATE,
    )
