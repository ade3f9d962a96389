"""The recorded real LLM annotation sets of CoNLL-2003 train and how each is read and aligned."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from nerloop.corpus.conll import Sentence, read_aligned_jsonl, read_tagged_columns
from nerloop.errors import NerloopError
from nerloop.io_utils import MissingInputError


class UnknownRecordedSetError(NerloopError, ValueError):
    """A recorded set name that is not in ``RECORDED_SETS``."""


@dataclass(frozen=True)
class RecordedSet:
    """One recorded LLM annotation set.

    name (str): the short name used for ``corpus/cheap/<name>.spacy`` and as the annotator.
    path (str): the file below the assets folder.
    alignment (str): ``position`` (sentence i is train sentence i), ``position_digits`` (the
        same after replacing digits by 0 in train tokens), ``tokens`` (first unused train
        sentence with the identical token sequence) or ``index`` (the file gives the index).
    llm (str): the model that produced the labels.
    """

    name: str
    path: str
    alignment: str
    llm: str
    description: str

    def read(self, assets_dir: Path) -> list[Sentence]:
        path = assets_dir / self.path
        if not path.exists():
            raise MissingInputError(
                f"{path} does not exist: run `python -m spacy project run assets` first"
            )
        if self.alignment in ("position", "position_digits"):
            return read_tagged_columns(path, n_columns=3, tag_column=1, separator="\t")
        if self.alignment == "tokens":
            return read_tagged_columns(path, n_columns=2, tag_column=1, separator=" ")
        if self.alignment == "index":
            return read_aligned_jsonl(path)
        raise ValueError(f"unknown alignment {self.alignment!r}")


RECORDED_SETS: dict[str, RecordedSet] = {
    s.name: s
    for s in (
        RecordedSet(
            name="chatgpt",
            path="llm_annotations/dsner_chatgpt/train.txt",
            alignment="position",
            llm="ChatGPT (gpt-3.5-turbo, 2023; DS-NER)",
            description="DS-NER conll-ChatGPT: all 14,041 train sentences (column 2; 3 is gold)",
        ),
        RecordedSet(
            name="uniner",
            path="llm_annotations/dsner_uniner/train.txt",
            alignment="position_digits",
            llm="UniNER (LLaMA-based NER LLM; DS-NER)",
            description="DS-NER conll-UniNER: all 14,041 train sentences, digits written as 0",
        ),
        RecordedSet(
            name="llama405b",
            path="llm_annotations/ispras_llama31_405b/llm.txt",
            alignment="tokens",
            llm="Llama-3.1-405B (token-JSON prompt; NERC_LLM_Ispras)",
            description="The study's cheap set: 2,037 random train sentences, aligned by tokens",
        ),
        RecordedSet(
            name="noisebench",
            path="llm_annotations/noisebench_llm/noise_llm.conll03_train_aligned.jsonl",
            alignment="index",
            llm="GPT-3.5 (Fabricator; NoiseBench LLM noise)",
            description="NoiseBench LLM noise on 5,883 train sentences (local-only derived file)",
        ),
    )
}
