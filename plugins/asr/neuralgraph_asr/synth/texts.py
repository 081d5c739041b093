"""What is spoken: digit strings and short sentences, all within the 28-label character set
(space, a-z, apostrophe), and the split of the sentence pool between train and dev/heldout.
"""

from __future__ import annotations

import random
import zlib
from collections.abc import Sequence

CHARSET = " abcdefghijklmnopqrstuvwxyz'"

_DIGIT_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
_EVAL_SENTENCE_SHARE = 5  # one pool sentence in 5 is kept for dev/heldout, never for train


def digit_text(rng: random.Random, min_len: int = 1, max_len: int = 7) -> str:
    """A digit string of ``min_len``..``max_len`` digits spelled as words; 0 is "zero" or "oh"."""
    words = []
    for _ in range(rng.randint(min_len, max_len)):
        digit = rng.randrange(10)
        words.append(rng.choice(("zero", "oh")) if digit == 0 else _DIGIT_WORDS[digit])
    return " ".join(words)


_SUBJECTS = (
    "i", "you", "we", "they", "she", "he", "my sister", "my brother", "the teacher",
    "the children", "a little girl", "the old man", "the doctor", "our neighbour", "the farmer",
)  # fmt: skip
_PAST = (
    "found", "saw", "lost", "bought", "painted", "moved", "opened", "cleaned", "carried",
    "dropped", "fixed", "washed", "sold", "wanted", "liked", "took", "kept", "needed", "brought",
)  # fmt: skip
_BASE = (
    "find", "see", "buy", "paint", "move", "open", "clean", "carry", "fix", "wash", "sell",
    "take", "keep", "bring", "check", "hold",
)  # fmt: skip
_NOUNS = (
    "cat", "dog", "book", "cup", "chair", "table", "window", "door", "car", "bus", "bird",
    "apple", "box", "hat", "coat", "key", "phone", "lamp", "bag", "ball", "clock", "pen", "map",
    "boat", "bike", "plant", "shirt", "shoe", "cake", "letter", "basket", "radio",
)  # fmt: skip
_PLURALS = (
    "cats", "dogs", "books", "cups", "chairs", "apples", "boxes", "hats", "keys", "birds",
    "pens", "shoes", "letters", "plants", "bottles", "candles",
)  # fmt: skip
_ADJS = (
    "red", "blue", "green", "small", "big", "old", "new", "warm", "cold", "quiet", "heavy",
    "clean", "dark", "bright", "yellow", "soft", "round", "broken", "empty", "little",
)  # fmt: skip
_PLACES = (
    "on the table", "in the box", "under the chair", "near the door", "in the kitchen",
    "by the window", "at the station", "in the garden", "behind the house", "on the shelf",
    "in the car", "next to the bed",
)  # fmt: skip
_WHEN_PAST = ("today", "yesterday", "this morning", "last night", "on monday", "after lunch")
_WHEN_FUTURE = ("tomorrow", "tonight", "next week", "on friday", "later", "soon", "after dinner")
_WEATHER = ("cold", "warm", "sunny", "windy", "raining", "snowing", "cloudy", "dark")
_NUMBERS = ("two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "twelve")
_FIXED = (
    "good morning", "good night", "thank you very much", "how are you today",
    "see you tomorrow", "turn left at the next corner", "the meeting starts at nine",
    "what time is it", "i don't know", "that's a good idea", "let's go home",
    "could you say that again", "i'm sorry i'm late", "we're almost there",
    "she's reading a book", "he's not at home", "the shop opens at ten", "call me later",
    "where are my keys", "it's time for lunch", "the water is too hot", "open the window please",
    "close the door behind you", "the train was late again", "i'll be back in five minutes",
    "they've already left", "you're right about that", "the sky is very blue",
    "my phone is on the desk", "wait for me at the gate", "the children are playing outside",
    "can you help me with this", "we need more milk", "the music is too loud",
    "please speak more slowly", "the garden looks lovely", "it's a long way from here",
    "the baby is sleeping", "don't forget your umbrella", "the coffee is ready",
)  # fmt: skip


def _sentence_templates(rng: random.Random) -> str:
    """One sentence from a random template (letters, spaces and apostrophes only)."""
    c = rng.choice
    templates = (
        lambda: f"{c(_SUBJECTS)} {c(_PAST)} the {c(_ADJS)} {c(_NOUNS)}",
        lambda: f"{c(_SUBJECTS)} {c(_PAST)} the {c(_NOUNS)} {c(_PLACES)}",
        lambda: f"{c(_SUBJECTS)} {c(_PAST)} my {c(_NOUNS)} {c(_WHEN_PAST)}",
        lambda: f"the {c(_ADJS)} {c(_NOUNS)} is {c(_PLACES)}",
        lambda: f"please {c(_BASE)} the {c(_NOUNS)}",
        lambda: f"please {c(_BASE)} the {c(_ADJS)} {c(_NOUNS)} {c(_WHEN_FUTURE)}",
        lambda: f"where is the {c(_ADJS)} {c(_NOUNS)}",
        lambda: f"i can't find the {c(_NOUNS)}",
        lambda: f"don't {c(_BASE)} my {c(_NOUNS)}",
        lambda: f"it's {c(_WEATHER)} {c((*_WHEN_PAST[:3], 'outside'))}",
        lambda: f"there are {c(_NUMBERS)} {c(_PLURALS)} {c(_PLACES)}",
        lambda: f"{c(_SUBJECTS)} didn't {c(_BASE)} the {c(_NOUNS)}",
        lambda: f"we'll {c(_BASE)} the {c(_NOUNS)} {c(_WHEN_FUTURE)}",
        lambda: f"i'd like the {c(_ADJS)} {c(_NOUNS)}",
        lambda: f"is the {c(_NOUNS)} {c(_ADJS)}",
        lambda: f"my {c(_NOUNS)} is {c(_ADJS)}",
        lambda: f"{c(_SUBJECTS)} can't {c(_BASE)} the {c(_PLURALS)}",
        lambda: c(_FIXED),
    )
    return c(templates)()


def sentence_pool(size: int = 1000) -> tuple[str, ...]:
    """A fixed list of ``size`` distinct short sentences (the same on every call)."""
    rng = random.Random(20240601)  # fixed: the pool must not depend on the corpus seed
    pool: dict[str, None] = {s: None for s in _FIXED}
    while len(pool) < size:
        pool[_sentence_templates(rng)] = None
    return tuple(pool)[:size]


def _split_sentences(pool: Sequence[str]) -> tuple[list[str], list[str]]:
    """Partition the pool by a stable hash: (train sentences, dev/heldout sentences)."""
    train, held = [], []
    for s in pool:
        (held if zlib.crc32(s.encode()) % _EVAL_SENTENCE_SHARE == 0 else train).append(s)
    return train, held
