"""Train stages launched multi-process from a study (`launch: {config: ...}`): 2 CPU processes
with gloo through recipes/accelerate/ddp_cpu_2proc.yaml on a tiny model; the shipped DeepSpeed
and FSDP configs parse as accelerate cluster configs; a bad config is a one-line error."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from safeadapt.core.errors import SafeAdaptError
from safeadapt.study.engine import run_study
from safeadapt.study.schema import load_study

_tiny = pytest.importorskip("_tiny")
ROOT = Path(__file__).resolve().parent.parent
ACC = ROOT / "recipes" / "accelerate"


@pytest.mark.parametrize("name,kind", [("deepspeed_zero2.yaml", "DEEPSPEED"), ("deepspeed_zero3.yaml", "DEEPSPEED"),
                                       ("fsdp.yaml", "FSDP"), ("ddp_cpu_2proc.yaml", "MULTI_GPU")])
def test_shipped_accelerate_configs_parse(name, kind):
    from accelerate.commands.config.config_args import ClusterConfig

    cfg = ClusterConfig.from_yaml_file(str(ACC / name))
    assert str(cfg.distributed_type).endswith(kind)
    if kind == "DEEPSPEED":
        assert cfg.deepspeed_config["zero_stage"] == int(name[-6])


def _study(tmp_path: Path, llm: Path, launch: str) -> Path:
    rows = [{"messages": [{"role": "user", "content": f"hi {i}"}, {"role": "assistant", "content": "I cannot help."}]}
            for i in range(16)]
    (tmp_path / "rows.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    f = tmp_path / "s.yaml"
    f.write_text(textwrap.dedent(f"""
        name: launch
        stages:
          tuned:
            kind: sft
            inputs: {{model: {{path: {llm}}}, data: {{path: rows.jsonl}}}}
            params:
              options: {{epochs: 1, batch_size: 4, lr: 1.0e-3}}
              launch: {launch}
        """))
    return f


def test_sft_stage_launches_two_gloo_processes(tmp_path, monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    llm = _tiny.build_tiny_llama(tmp_path / "m", layers=1)
    f = _study(tmp_path, llm, f"{{config: {ACC / 'ddp_cpu_2proc.yaml'}}}")
    plan = run_study(load_study(f), tmp_path / "out")
    assert plan[0].status == "done"
    meta = json.loads((plan[0].dir / "model" / "safeadapt_train.json").read_text())["train"]
    # 16 rows / (2 ranks x batch 4) = 2 optimizer steps for one epoch
    assert meta["world_size"] == 2 and meta["global_step"] == 2
    assert (plan[0].dir / "model" / "config.json").exists()


def test_launch_errors_are_one_line(tmp_path):
    llm = _tiny.build_tiny_llama(tmp_path / "m", layers=1)
    with pytest.raises(SafeAdaptError, match="launch.num_processes: Value error, must be at least 1"):
        load_study(_study(tmp_path, llm, "{config: x.yaml, num_processes: 0}"))
    f = _study(tmp_path, llm, "{config: missing.yaml}")
    with pytest.raises(SafeAdaptError, match="accelerate config not found"):
        run_study(load_study(f), tmp_path / "out")
