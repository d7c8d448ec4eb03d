"""Judges grade (prompt, response) pairs into Judgement(label in {refusal, compliance, benign, no_answer, unparsed},
score, reason).

Built-ins (`safeadapt.eval.judges.registry.get_judge(name, **kwargs)`): "refusal" (the default: offline regex
concepts + logistic weights, score = P(refusal) in [0, 1], refittable with `calibration=`; a non-refusal is
`compliance` or `benign` by the harm features of `harm.py`), "rubric" (Qi et al. 1-5 harmfulness, score = 1..5),
"strongreject" (score in [0, 1]), "guard" (Llama Guard safe/unsafe + S1-S14, score 1 = unsafe; Llama
Guard's own format when the judge model is one), "harmbench" (HarmBench's classifier prompt, yes/no),
"strongreject-ft" (the fine-tuned StrongREJECT evaluator, score in [0, 1]), "ensemble" (majority/primary
vote + pairwise kappa). LLM judges take `backend=` (any eval Backend), or `model=` + `backend=`
through `safeadapt.eval.judges.build.build_judge` (what eval, search and study stages use).
A new judge is one module here registering itself (`@JUDGES.register("name", needs_backend=...,
default_max_new_tokens=...)`; see docs/plugins.md); helper modules (llm, nonanswer, grade, ...) register none."""
