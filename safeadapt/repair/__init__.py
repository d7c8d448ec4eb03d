"""Repairs that restore safety after adaptation: weight merging (repair.merge) and the repairs of
`safeadapt repair` (repair.api: antidote, set_difference, resta, safemerge, somf in repair.methods),
which stream through the merge engine's writer."""
