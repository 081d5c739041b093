"""What is spoken: digit strings, short sentences and isolated words (speech commands and
the `unknown` words), all within the 28-label character set (space, a-z, apostrophe), and the
split of the sentence and unknown-word pools between train and dev/heldout.
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


# Speech Commands v1's ten words (its 12-class task adds `unknown` and `silence`).
COMMAND_WORDS: tuple[str, ...] = (
    "yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go",
)  # fmt: skip
# Common English words spoken for the `unknown` class: Speech Commands' twenty auxiliary words,
# everyday nouns, verbs and adjectives, and a few that sound near a command word ("yet",
# "town", "lift", "top") so that a model learns the words themselves, not their first sound.
# None is a command word or sounds the same as one ("know", "write" are left out).
UNKNOWN_WORDS: tuple[str, ...] = (
    "bed", "bird", "cat", "dog", "eight", "five", "four", "happy", "house", "marvin", "nine",
    "one", "seven", "sheila", "six", "three", "tree", "two", "wow", "zero",
    "apple", "baby", "back", "ball", "bank", "basket", "bear", "bell", "big", "black", "blue",
    "boat", "book", "box", "boy", "bread", "brown", "bus", "butter", "cake", "call", "car",
    "card", "chair", "cheese", "chicken", "city", "clock", "cloud", "coat", "coffee", "cold",
    "come", "cook", "corn", "dance", "dark", "day", "desk", "door", "dream", "drink",
    "duck", "egg", "face", "farm", "fast", "father", "fire", "fish", "flower", "food", "foot",
    "forest", "friend", "frog", "garden", "girl", "glass", "gold", "grass", "green", "hand",
    "hat", "head", "heart", "hello", "help", "hill", "home", "horse", "hot", "jump", "key",
    "king", "kitchen", "lamp", "leaf", "letter", "light", "lion", "long", "lunch", "man",
    "milk", "money", "monkey", "moon", "morning", "mother", "mountain", "mouse", "music",
    "name", "night", "nose", "ocean", "orange", "paper", "park", "party", "pencil", "phone",
    "picture", "pig", "pink", "plant", "play", "please", "queen", "rabbit", "rain", "red",
    "river", "road", "rock", "room", "round", "run", "salt", "sand", "school", "sea", "shoe",
    "shop", "short", "sister", "sleep", "slow", "small", "snow", "song", "star", "street",
    "sugar", "summer", "sun", "table", "tea", "thank", "time", "today", "toy", "train",
    "water", "week", "white", "window", "winter", "wood", "yellow", "zoo",
    "yet", "now", "cup", "town", "lift", "bright", "top", "goal", "often", "upper",
)  # fmt: skip
# Words that sound like another, so that a target word's homophones never speak `unknown`.
_HOMOPHONES: dict[str, tuple[str, ...]] = {
    "no": ("know",), "right": ("write", "rite", "wright"), "two": ("to", "too"),
    "four": ("for", "fore"), "eight": ("ate",), "one": ("won",), "sea": ("see",),
    "sun": ("son",), "knight": ("night",), "night": ("knight",), "hi": ("high",),
    "high": ("hi",), "bear": ("bare",), "tea": ("tee",), "week": ("weak",),
    "red": ("read",), "road": ("rode", "rowed"), "flower": ("flour",), "hole": ("whole",),
    "whole": ("hole",), "pair": ("pear", "pare"), "pear": ("pair",), "mail": ("male",),
}  # fmt: skip
SPECIAL_LABELS = ("unknown", "silence")


def check_words(words: Sequence[str]) -> list[str]:
    """The target words of a commands corpus, lowercased; a UserError-worthy ``ValueError``
    for an empty list, a duplicate, a reserved label or a character outside the charset."""
    cleaned = [" ".join(str(w).lower().split()) for w in words]
    if not cleaned:
        raise ValueError("--words needs at least one word")
    for word in cleaned:
        if not word:
            raise ValueError("a word cannot be empty")
        if word in SPECIAL_LABELS:
            raise ValueError(f"{word!r} is the label of a class the corpus makes itself; "
                             "choose another word")
        bad = sorted({ch for ch in word if ch not in CHARSET})
        if bad:
            raise ValueError(f"word {word!r} has characters outside a-z, space and "
                             f"apostrophe: {''.join(bad)!r}")
    dupes = sorted({w for w in cleaned if cleaned.count(w) > 1})
    if dupes:
        raise ValueError(f"words must be distinct (given twice: {', '.join(dupes)})")
    return cleaned


def unknown_words(words: Sequence[str]) -> tuple[list[str], list[str]]:
    """The `unknown` pool for target ``words``: the built-in words that are neither a target
    nor its homophone, split by a stable hash into (train words, dev/heldout words): one in
    five is kept for dev and heldout, so those splits' unknown words are never trained on."""
    taken = set(words)
    for word in words:
        taken.update(_HOMOPHONES.get(word, ()))
    pool = [w for w in UNKNOWN_WORDS if w not in taken]
    train, held = [], []
    for word in pool:
        (held if zlib.crc32(word.encode()) % _EVAL_SENTENCE_SHARE == 0 else train).append(word)
    return train, held
