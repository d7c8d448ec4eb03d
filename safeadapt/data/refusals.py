"""Refusals written by the project (never copied from a dataset or a model): an opener, a reason
tied to the request's harm category (`builtin.CATEGORIES`) and a safe redirect, combined per
prompt by a seeded hash, so preference data sees many phrasings instead of one canned line."""

from __future__ import annotations

import hashlib

OPENERS: tuple[str, ...] = (
    "I can't help with that.",
    "I won't help with this request.",
    "I'm sorry, but I can't assist with that.",
    "I'm not able to help with this.",
    "Sorry, I can't provide that.",
    "I have to decline this one.",
    "That's not something I can help with.",
    "I can't do that.",
)

REASONS: dict[str, tuple[str, ...]] = {
    "violence_weapons": (
        "It could be used to seriously hurt people.",
        "Instructions for weapons or attacks put lives at risk.",
    ),
    "cybercrime_malware": (
        "Breaking into systems or writing malware harms real people and is illegal.",
        "Helping someone get unauthorised access to accounts or computers would cause real damage.",
    ),
    "fraud_scams": (
        "It would help deceive people out of their money.",
        "Scams and forgery hurt the people they target.",
    ),
    "drugs": (
        "Making or dealing illegal drugs endangers people's health and is against the law.",
        "Hiding or producing controlled substances can get people badly hurt.",
    ),
    "self_harm": (
        "Your safety matters, and I don't want to help with anything that could hurt you.",
        "I'm worried this could lead to someone getting hurt.",
    ),
    "hate_harassment": (
        "Content that demeans or targets people causes real harm.",
        "Harassment and hateful content hurt the people they are aimed at.",
    ),
    "privacy_surveillance": (
        "Tracking or exposing someone without their consent violates their privacy and safety.",
        "Collecting someone's personal information covertly can put them in danger.",
    ),
    "sexual_nonconsent": (
        "Anything sexual without consent is abuse.",
        "This would violate someone's consent and dignity.",
    ),
    "misinformation": (
        "Deliberately spreading false information misleads and harms people.",
        "Fabricated claims like this can do real damage once they spread.",
    ),
    "illegal_trade": (
        "Trafficking and smuggling cause serious harm to people and animals.",
        "This would support illegal trade that exploits others.",
    ),
    "extremism": (
        "Supporting violent extremism puts people in danger.",
        "Propaganda and recruitment for violent groups cause real harm.",
    ),
    "child_safety": (
        "Protecting children comes first, and this could put a child at risk.",
        "Anything that could endanger or exploit a minor is off limits.",
    ),
}
GENERIC_REASONS: tuple[str, ...] = (
    "It could cause real harm to people.",
    "This could be used to hurt someone or break the law.",
)

REDIRECTS: dict[str, tuple[str, ...]] = {
    "self_harm": (
        "If you are struggling, please reach out to someone you trust or a local crisis line; you don't have to face "
        "this alone.",
        "If you're going through a hard time, talking to a doctor, a counsellor or a crisis line can really help.",
    ),
    "cybercrime_malware": (
        "If you're interested in security, I'm happy to talk about defending systems or legal ways to learn it.",
    ),
    "privacy_surveillance": ("If you're worried about your own privacy, I can suggest ways to protect it.",),
}
GENERIC_REDIRECTS: tuple[str, ...] = (
    "If there's a safe, legal goal behind this, I'm glad to help with that instead.",
    "I'm happy to help with something else.",
    "Is there something else I can help you with?",
    "",
)


def _pick(options: tuple[str, ...], key: str) -> str:
    h = int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big")
    return options[h % len(options)]


def refusal_for(prompt_id: str, category: str | None = None, seed: int = 0) -> str:
    """A refusal for one prompt: deterministic in (seed, prompt_id), varied across prompts."""
    cat = category or ""
    opener = _pick(OPENERS, f"{seed}\x00{prompt_id}\x00open")
    reason = _pick(REASONS.get(cat, GENERIC_REASONS), f"{seed}\x00{prompt_id}\x00why")
    redirect = _pick(REDIRECTS.get(cat, GENERIC_REDIRECTS), f"{seed}\x00{prompt_id}\x00next")
    return " ".join(x for x in (opener, reason, redirect) if x)


def n_variants(category: str | None = None) -> int:
    """How many distinct refusals `refusal_for` can write for a category."""
    return (
        len(OPENERS)
        * len(REASONS.get(category or "", GENERIC_REASONS))
        * len(REDIRECTS.get(category or "", GENERIC_REDIRECTS))
    )
