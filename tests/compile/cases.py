"""The shipped configs and their environments, as test parameters."""

from __future__ import annotations

from pathlib import Path

from nebula_compile.api import validate_path

ROOT = Path(__file__).resolve().parent.parent.parent
CONFIGS = {
    "demo": ROOT / "nebula.yaml",
    **{p.parent.name: p for p in sorted((ROOT / "examples").glob("*/nebula.yaml"))},
}


def _environment_cases() -> list[tuple[str, str]]:
    cases = []
    for name, config in CONFIGS.items():
        spec = validate_path(str(config)).spec
        assert spec is not None, config
        cases.extend((name, env) for env in spec.environments)
    return cases


ENV_CASES = _environment_cases()
ENV_IDS = [f"{name}-{env}" for name, env in ENV_CASES]
