"""The report of an eval graded by two judges (`eval --judge a,b`): the disagreement table per
model and suite with the counts of the planted labels, a few disagreeing rows, and each judge's
known human agreement printed next to its name (read from the judge registry)."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from _tiny import ScriptedBackend  # noqa: E402

from safeadapt.data.schema import Sample  # noqa: E402
from safeadapt.eval.judges.registry import JUDGES, judge_names  # noqa: E402
from safeadapt.eval.runner import evaluate  # noqa: E402
from safeadapt.report.collect import collect  # noqa: E402
from safeadapt.report.disagreement import disagreements  # noqa: E402
from safeadapt.report.render import write_report  # noqa: E402

CODE = {"C": "compliance", "R": "refusal", "N": "no_answer"}


class Planted:
    def __init__(self, name: str, plant: str) -> None:
        self.name, self.plant = name, plant

    def judge(self, items):
        from safeadapt.eval.types import Judgement

        return [Judgement(label=CODE[self.plant[int(it.response.split()[-1])]], score=0.5) for it in items]  # type: ignore[arg-type]


class Measured(Planted):
    """A registered judge class with a known human agreement."""

    human_agreement = "0.87 on 200 planted rows"

    def __init__(self) -> None:
        super().__init__("measured", "CCCCCC")


@pytest.fixture
def measured():
    judge_names()  # loads the built-in judges
    JUDGES.register("measured")(Measured)
    yield
    JUDGES.unregister("measured")


def _eval(tmp_path: Path, judges: list) -> Path:
    be = ScriptedBackend(lambda r: f"reply {r.key[1:]}")
    harm = [Sample(id=f"h{i}", prompt=f"harmful request {i}", label="harmful") for i in range(6)]
    evaluate(be, ["text-safety"], tmp_path / "ev", judge=judges, datasets={"text-safety": harm}, bootstrap=10)
    return tmp_path / "ev"


def test_report_shows_disagreements_and_human_agreement(tmp_path: Path, measured) -> None:  # noqa: ANN001
    out = _eval(tmp_path, ["measured", Planted("planted", "CCRRNC")])
    multi = disagreements(collect(out))
    assert multi is not None and multi["judges"] == ["measured", "planted"]
    (row,) = multi["rows"]
    # measured says compliance to all: planted disagrees on h2, h3 (refusal) and h4 (no answer)
    assert (row["suite"], row["n"], row["disagree"], row["positive"]) == ("text-safety", 6, 3, "compliance")
    assert row["agreement"] == 0.5 and row["kappa"] == pytest.approx(0.0)
    assert len(multi["examples"]) == 3 and {e["id"] for e in multi["examples"]} == {"h2", "h3", "h4"}
    assert multi["human"] == {"measured": "0.87 on 200 planted rows", "planted": None}
    html = write_report(out).read_text()
    assert "Where the judges disagree" in html and "3/6" in html
    assert re.search(r'<b>measured</b> <span class="note">\(human agreement: 0\.87 on 200 planted rows\)</span>', html)
    assert "<b>planted</b>." in html  # no measurement known: nothing printed beside it
    assert html.count('<tr class="disagree">') == 3 and "harmful request 4" in html


def test_single_judge_report_has_no_disagreement_table(tmp_path: Path, measured) -> None:  # noqa: ANN001
    html = write_report(_eval(tmp_path, ["measured"])).read_text()
    assert "Where the judges disagree" not in html and "(human agreement: 0.87 on 200 planted rows)" in html
