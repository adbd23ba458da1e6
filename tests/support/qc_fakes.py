"""A QC agent whose identity check fails chosen shots for a number of runs: the seam of the identity fix."""

from __future__ import annotations

import json
from typing import Any

from agents.base import AgentResult, RunContext
from agents.qc import QCAgent, QCInput, QCReport
from pipelines.qc.base import CheckResult, Status


class FlakyIdentityQC(QCAgent):
    """Measures for real, then reports the first shot that has a speaker as not showing its
    speaker for the first ``fail_runs`` runs (a generated face that drifted)."""

    def __init__(self, fail_runs: int = 1) -> None:
        super().__init__()
        self.fail_runs = fail_runs
        self.calls = 0
        self.flagged: str = ""
        self.seen: list[dict[str, Any]] = []  # per run: the flagged shot's keyframe seed

    def run(self, inp: QCInput, ctx: RunContext) -> AgentResult[QCReport]:
        res = super().run(inp, ctx)
        self.calls += 1
        from core.workspace import Workspace

        ws = Workspace(inp.project)
        render = json.loads((ws.synth_dir(inp.episode) / "render.json").read_text(encoding="utf-8"))
        shot = next(s for s in render["shots"] if any(ln["speaker"] != "旁白" for ln in s["lines"]))
        self.flagged = shot["id"]
        self.seen.append({"seed": shot.get("seed"), "picture": shot.get("picture")})
        if self.calls <= self.fail_runs:
            report = res.output
            report.checks = [CheckResult("identity", Status.FAIL, 0.9, 0.6, [(0.0, 1.0)],
                                         detail=f"shot {self.flagged}: the face is not its speaker (test double)",
                                         data={"flagged": [self.flagged], "shots": []})
                             if c.id == "identity" else c for c in report.checks]
        return res
