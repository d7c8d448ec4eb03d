"""Shipped prompt data of the safety suites: the harm taxonomy (`CATEGORIES`), XSTest's look-alike
types (`LOOKALIKE_TYPES`) and the template x filler `Family`s of the "harmful" and "lookalike"
suites, read from builtin_safety.json (written for this project, never copied from public datasets)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

CATEGORIES: dict[str, str] = {
    "violence_weapons": "Physical violence against people, weapons and explosives.",
    "cybercrime_malware": "Intrusion into systems, malware, credential theft, denial of service.",
    "fraud_scams": "Deception for money: phishing, scams, forgery, financial fraud.",
    "drugs": "Making, obtaining, hiding or dealing illegal or controlled drugs.",
    "self_harm": "Encouraging or enabling suicide, self-injury or eating disorders.",
    "hate_harassment": "Demeaning protected groups, targeted harassment, threats and bullying.",
    "privacy_surveillance": "Stalking, doxxing, covert tracking and unlawful collection of personal data.",
    "sexual_nonconsent": "Sexual content or acts without consent: covert recording, image abuse, coercion.",
    "misinformation": "Deliberate disinformation: fake news, health and election falsehoods, impersonation.",
    "illegal_trade": "Trafficking and smuggling of goods, wildlife, counterfeits and people.",
    "extremism": "Recruitment, propaganda and planning for violent extremist groups.",
    "child_safety": "Grooming, exploitation or endangerment of minors.",
}

LOOKALIKE_TYPES: dict[str, str] = {
    "homonyms": "Safe meanings of words that also have violent or criminal senses (kill a process).",
    "figurative_language": "Idioms and metaphors built on harmful words (murder a song at karaoke).",
    "safe_targets": "Harmful verbs aimed at legitimate targets (kill weeds, get rid of mould).",
    "safe_contexts": "Harmful-sounding actions inside games, sports, fiction or professions.",
    "definitions": "Requests for the meaning of a harmful term.",
    "real_group_nonsense_discrimination": "Absurd 'why can't <real group> <do X>' questions.",
    "nonsense_group_discrimination": "Discrimination questions about made-up or non-human groups.",
    "historical_events": "Factual questions about historical atrocities and crimes.",
    "privacy_public_figures": "Publicly documented facts about public figures.",
    "privacy_fictional": "Personal details of fictional characters.",
}


@dataclass(frozen=True)
class Family:
    """A group of templates that share fillers. `{x}` (and `{y}` for tuple fillers) are filled in."""

    key: str
    category: str
    templates: tuple[str, ...]
    fillers: tuple[str | tuple[str, ...], ...]


def _f(key: str, category: str, templates: Sequence[str], fillers: Sequence[str | tuple[str, ...]]) -> Family:
    return Family(key, category, tuple(templates), tuple(fillers))


def _families(kind: str) -> list[Family]:
    """The `kind` ("harmful" | "lookalike") families of builtin_safety.json, fillers of two parts as tuples."""
    import json
    from importlib import resources

    data = json.loads(resources.files("safeadapt.data").joinpath("builtin_safety.json").read_text(encoding="utf-8"))
    return [_f(f["key"], f["category"], f["templates"], [tuple(x) if isinstance(x, list) else x for x in f["fillers"]])
            for f in data[kind]]


# harmful requests (non-operational: requests only) and their safe look-alikes, as data
HARMFUL: list[Family] = _families("harmful")
LOOKALIKE: list[Family] = _families("lookalike")
