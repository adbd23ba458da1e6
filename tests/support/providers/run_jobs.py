"""A run of provider jobs in its own process, for the kill-and-resume tests.

``python -m tests.support.providers.run_jobs PROJECT PROVIDER BASE_URL N`` runs N video jobs
(keys from the environment) and prints one line per finished job.
"""

from __future__ import annotations

import sys
from pathlib import Path

from pipelines.providers import PROVIDERS, GenRequest, ProviderSettings
from pipelines.providers.runner import Job, TaskRunner


def jobs(provider: str, n: int, image: Path) -> list[Job]:
    model = {"ark": "doubao-seedance-1-0-pro-250528", "kling": "kling-v2-1", "dashscope": "wan2.2-i2v-plus",
             "minimax": "MiniMax-Hailuo-02"}[provider]
    return [Job(f"ep01/shot{i:02d}/video", provider,
                GenRequest("video", model, prompt=f"镜头 {i}：雨夜，主角回头", image=image, seed=100 + i,
                           width=720, height=1280, duration=5)) for i in range(n)]


def main(argv: list[str]) -> int:
    project, provider, base_url, n = Path(argv[0]), argv[1], argv[2], int(argv[3])
    image = project / "first_frame.png"
    settings = ProviderSettings(base_url=base_url, poll_first_s=0.05, poll_max_s=0.2, concurrency=8)
    prov = PROVIDERS.create(provider, settings)
    with TaskRunner(project, {provider: prov}) as runner:
        for res in runner.run(jobs(provider, n, image)):
            print(res.job.name, res.status, res.error, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
