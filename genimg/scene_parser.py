"""What a user types -> a ``Scene``: up to two noun phrases, each with its colour, count and size, and the relation
between them; each phrase snapped to its nearest emoji name by the concept index.

"a cute puppy next to a kitten" -> dog and cat; "two blue stars" -> star x2 in blue; "a rocket to the right of a car"
-> automobile to the left of rocket. Parsing is plain word rules (the models know seven colours, counts up to four, two
relations); what they cannot draw (a third object, "five", "black") is kept in ``Scene.unplaced`` and the result
says so. A prompt with none of these words is not parsed at all: concept matching alone, at today's cost.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable

from genimg.colours import COLOURS
from genimg.scene import MAX_COUNT, NUMBER_WORDS, Scene, SceneObject

# Relation words (whole words): the relation of the phrase before to the one after. Where they are, the prompt splits
# there; a plain "and"/"next to" only where there is none, and only between two named things: "with" describes one
# thing more often than it adds a second ("a cake with candles", "an elephant with big ears"), and "a black and white
# football" is one football.
_RELATIONS = {"to the left of": "left of", "on the left of": "left of", "left of": "left of",
              "to the right of": "right of", "on the right of": "right of", "right of": "right of",
              "on top of": "above", "above": "above", "over": "above", "below": "below", "underneath": "below",
              "beneath": "below", "under": "below"}
_JOINTS = ("next to", "beside", "and")


def _alternation(phrases) -> re.Pattern:
    longest_first = sorted(phrases, key=len, reverse=True)
    return re.compile(r"(?<!\S)(?:" + "|".join(re.escape(p) for p in longest_first) + r")(?!\S)")


_RELATION_PATTERN, _JOINT_PATTERN = _alternation(_RELATIONS), _alternation(_JOINTS)
_ANY_PATTERN = _alternation([*_RELATIONS, "and"])
_COUNTS = {**{word: number for number, word in NUMBER_WORDS.items()}, "a": 1, "an": 1, "a pair of": 2,
           "a couple of": 2, **{str(n): n for n in range(1, 5)}}
_TOO_MANY = {"five", "six", "seven", "eight", "nine", "ten", "many", "several", "lots of", "a few",
             *(str(n) for n in range(5, 100))}
_COLOUR_WORDS = {**{c: c for c in COLOURS}, "violet": "purple", "magenta": "pink", "crimson": "red",
                 "scarlet": "red", "navy": "blue", "lime": "green"}
_OTHER_COLOURS = {"black", "white", "grey", "gray", "brown", "gold", "golden", "silver", "cyan", "teal", "beige"}
_SMALL = {"small", "tiny"}  # not "little": "a cozy little house" is a house
_ATTRIBUTE_WORDS = frozenset({*_COLOUR_WORDS, *_OTHER_COLOURS, *_SMALL, *NUMBER_WORDS.values(), "a", "an", "the",
                              "one", "pair", "couple", "of", *(str(n) for n in range(10))})
_FILLER = re.compile(r"^(?:(?:a|an) (?:photo|picture|image|drawing|emoji) of |draw |show me )+")
# A matched caption this near, naming the words typed, is an emoji's own name ("red apple", "fork and knife").
EXACT_NAME = 0.97


@dataclass(frozen=True)
class Phrase:
    words: str  # the noun phrase left to match ("puppy"); singular where a count made it plural
    whole: str  # the phrase without count or article ("red apple"), in case it is itself a name
    colour: str | None = None
    count: int = 1
    small: bool = False
    unplaced: tuple = ()


def _singular(word: str) -> str:
    irregular = {"men": "man", "women": "woman", "people": "person", "mice": "mouse", "geese": "goose",
                 "teeth": "tooth", "feet": "foot", "children": "child", "knives": "knife", "leaves": "leaf"}
    if word in irregular:
        return irregular[word]
    for suffix, replacement in (("ies", "y"), ("ches", "ch"), ("shes", "sh"), ("xes", "x"), ("sses", "ss"),
                                ("s", "")):
        if word.endswith(suffix) and len(word) > len(suffix) + 2 and not word.endswith("ss"):
            return word[: -len(suffix)] + replacement
    return word


def read_phrase(text: str) -> Phrase:
    """"two small blue stars" -> Phrase("star", "small blue stars", "blue", 2, True)."""
    words, unplaced, count = text.split(), [], 1
    for length in (3, 2, 1):  # a count leads the phrase: "a pair of", "three", "a"
        lead = " ".join(words[:length])
        if lead in _COUNTS:
            count, words = _COUNTS[lead], words[length:]
            break
        if lead in _TOO_MANY:
            count, words = MAX_COUNT, words[length:]
            unplaced.append(f"{lead} (at most {NUMBER_WORDS[MAX_COUNT]} are drawn)")
            break
    whole = " ".join(words)
    colour, small, rest = None, False, []
    for word in words:
        if word in _COLOUR_WORDS and colour is None:
            colour = _COLOUR_WORDS[word]
        elif word in _SMALL:
            small = True
        else:
            if word in _OTHER_COLOURS:
                unplaced.append(f"{word} (the colours are {', '.join(COLOURS)})")
            rest.append(word)
    if count > 1 and rest:
        rest[-1] = _singular(rest[-1])
    return Phrase(" ".join(rest), whole, colour, count, small, tuple(unplaced))


def _normalised(prompt: str) -> str:
    text = " ".join(re.sub(r"[^\w\s-]", " ", prompt.lower()).split())
    return _FILLER.sub("", text)


def _names_a_thing(text: str) -> bool:
    """Whether words are left once articles, counts, colours and sizes are taken out ("a black" names nothing)."""
    return any(word not in _ATTRIBUTE_WORDS for word in text.split())


def _split_at(pattern: re.Pattern, text: str):
    """(before, the words matched, after) at the first match with a named thing on both sides; None where there is
    none."""
    for found in pattern.finditer(text):
        before, after = text[:found.start()].strip(), text[found.end():].strip()
        if _names_a_thing(before) and _names_a_thing(after):
            return before, found.group(0), after
    return None


def split_prompt(prompt: str) -> tuple[list[str], str | None, list[str]]:
    """(noun phrases, relation of the first to the second, parts left over). At most two phrases are kept: what
    follows the second ("... and a green tree") is left over."""
    text = _normalised(prompt)
    found = _split_at(_RELATION_PATTERN, text) or _split_at(_JOINT_PATTERN, text)
    if found is None:
        return [text], None, []
    first, words, rest = found
    relation, leftover = _RELATIONS.get(words), []
    earlier = _split_at(_ANY_PATTERN, first) if relation else None
    if earlier is not None:  # "a dog and a cat left of a key": the cat is left of the key; the dog is left over
        first, leftover = earlier[2], [earlier[0]]
    further = _split_at(_ANY_PATTERN, rest)
    if further is not None:  # "... and a green tree"
        rest, leftover = further[0], [*leftover, further[2]]
    return [first, rest], relation, [f"{words} (two objects at most are drawn)" for words in leftover]


def is_compositional(prompt: str) -> bool:
    """Whether the prompt has a word a scene is made of (colour, count, size, relation); if not, it is one thing."""
    words = set(re.sub(r"[^\w\s-]", " ", prompt.lower()).split())
    return bool(words & _SCENE_WORDS) or any(word.isdigit() for word in words)


_SCENE_WORDS = frozenset({*_COLOUR_WORDS, *_OTHER_COLOURS, *_SMALL, *NUMBER_WORDS.values(), *_TOO_MANY, "pair",
                          "couple", "left", "right", "above", "over", "below", "under", "beneath", "underneath",
                          "top", "next", "beside", "and"})
Matcher = Callable[[list[str]], list]  # texts -> their ConceptMatch (genimg.concepts), in order


def parse(prompt: str, match: Matcher, own_colours: Callable[[str], list] = lambda name: ()) -> Scene | None:
    """The scene ``prompt`` describes; None where it names a single plain emoji (concept matching alone does).
    ``own_colours(name)``: the colours an emoji already has: asked for, they leave it as it is ("a yellow banana")."""
    if not is_compositional(prompt):
        return None
    texts, relation, leftover = split_prompt(prompt)
    phrases = [read_phrase(text) for text in texts]
    if not all(phrase.words for phrase in phrases):  # "two", "a blue": no object named; the nearest emoji it is
        return None
    queries = [prompt] + [q for p in phrases for q in (p.words, p.whole)]
    matches = match(queries)
    if _names_itself(matches[0], prompt):  # "fork and knife", "red apple": an emoji's own name
        return None
    objects, unplaced, matched = [], list(leftover), []
    for phrase, (by_words, by_whole) in zip(phrases, zip(matches[1::2], matches[2::2])):
        colour, chosen = phrase.colour, by_words
        if colour and _names_itself(by_whole, phrase.whole):
            chosen, colour = by_whole, None  # the colour is part of the name ("red apple")
        if colour in own_colours(chosen.concept):
            colour = None  # its own colour: the emoji as it is
        objects.append(SceneObject(chosen.concept, colour, phrase.count, phrase.small))
        matched.append((phrase.words, chosen.similarity))
        unplaced.extend(phrase.unplaced)
    if len(objects) == 2:
        objects, more = _one_kind_counted(objects)
        unplaced.extend(more)
        return Scene.related(objects[0], relation, objects[1], unplaced, matched)
    scene = Scene((objects[0],), None, tuple(unplaced), tuple(matched))
    # One plain thing ("a black and white football", "a yellow banana"): the whole prompt's nearest emoji, as before.
    return None if scene.is_single_emoji else scene


def _one_kind_counted(objects: list[SceneObject]) -> tuple[list[SceneObject], list[str]]:
    """Two kinds of object are drawn one each, full size (the models learned counts and sizes of one kind alone)."""
    unplaced = [f"{NUMBER_WORDS[o.count]} (one of each is drawn beside another object)" for o in objects if o.count > 1]
    unplaced += ["small (sizes are drawn for one object alone)" for o in objects if o.small]
    return [SceneObject(o.name, o.colour) for o in objects], unplaced


def _names_itself(concept_match, text: str) -> bool:
    caption = concept_match.caption.casefold()
    words = re.sub(r"^(?:a|an) ", "", text.casefold())
    return concept_match.similarity >= EXACT_NAME and re.sub(r"^(?:a|an) ", "", caption) == words
