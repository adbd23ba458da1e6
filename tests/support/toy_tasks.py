"""Task kinds for the executor tests: small, deterministic, writing whole files like the real ones."""

from __future__ import annotations

import time

from core.executor import TaskContext, TaskOutput
from core.files import atomic_write_text
from core.registry import Registry

KINDS: Registry[TaskOutput] = Registry("toy-task", "task kinds of the executor tests")
KINDS_PATH = "tests.support.toy_tasks:KINDS"


@KINDS.register("write", description="writes args['text'] to args['out'] (kept when already there)")
def write(ctx: TaskContext) -> TaskOutput:
    out = ctx.path(ctx.args["out"])
    if out.exists() and out.read_text(encoding="utf-8") == ctx.args["text"]:
        return TaskOutput(value=ctx.args["text"], reused=True)
    time.sleep(float(ctx.args.get("sleep", 0)))
    atomic_write_text(out, ctx.args["text"])
    return TaskOutput(value=ctx.args["text"])


@KINDS.register("join", description="joins the files args['parts'] into args['out']")
def join(ctx: TaskContext) -> TaskOutput:
    text = "".join(ctx.path(p).read_text(encoding="utf-8") for p in ctx.args["parts"])
    atomic_write_text(ctx.path(ctx.args["out"]), text)
    return TaskOutput(value=text, notes=[f"joined {len(ctx.args['parts'])}"])


@KINDS.register("fail", description="raises a bug")
def fail(ctx: TaskContext) -> TaskOutput:
    raise RuntimeError("boom")
