"""The studio's review tab: shots (approve, reject, edit a prompt, regenerate, re-render) and an
episode's state (Draft -> In review -> Approved -> Delivered) with its history.

Every handler is guarded by :class:`ui.access.StudioAccess` for its action, and every change is
written to the project's trail (:mod:`core.trail`) with who did it and the content hashes of
what it concerned: the clip a reviewer approved, the prompt an artist wrote, the video that was
delivered.
"""

from __future__ import annotations

import copy
import hashlib
import html
from pathlib import Path
from typing import Any

from core.config import Config
from core.errors import InputError
from core.trail import STATE_LABELS, Trail, episode_subject
from core.workspace import Workspace
from ui.access import StudioAccess

_SHOT_DONE = {"approve": "已通过 · approved", "reject": "已退回，待修改 · rejected, pending again",
              "prompt": "提示词已保存，重新合成后生效 · saved", "regenerate": "将用新种子重新生成 · a new seed on the next render"}
_SHOT_ACTION = {"approve": "shot.approve", "reject": "shot.reject", "prompt": "shot.prompt",
                "regenerate": "shot.regenerate"}
_EPISODE_DONE = {"episode.submit": "已提交审核 · submitted for review", "episode.approve": "本集已通过 · approved",
                 "episode.reject": "本集已退回 · rejected", "episode.deliver": "已交付 · delivered"}


def episode_markdown(project: Path, episode: int) -> str:
    """An episode's state and its history, newest last, for the page."""
    status = Trail(project).episode_status(episode)
    rows = [f"**第{episode}集 Episode {episode}：{status.label}**", "",
            "| 时间 when (UTC) | 谁 who | 操作 action | 状态 state | 说明 note |", "|---|---|---|---|---|"]
    for e in Trail(project).entries(episode):
        state = f"{STATE_LABELS.get(e.state_from or '', '')} → {STATE_LABELS.get(e.state_to, '')}" \
            if e.state_to else ""
        note = html.escape(e.note) + (" · " + ", ".join(f"{k} {v[:12]}" for k, v in e.hashes.items())
                                      if e.hashes else "")
        rows.append(f"| {e.at[:19]} | {html.escape(e.who)} ({e.role}) | {e.action} {html.escape(e.subject)} | "
                    f"{state} | {note.replace('|', '/')} |")
    return "\n".join(rows)


def build_review_tab(config: Config, workspace: Path, access: StudioAccess) -> Any:
    """Add the review tab's components to the enclosing ``gr.Tab``; returns its project dropdown."""
    import gradio as gr

    from agents.studio import Studio
    from ui.app import _project_dir, _render_of, list_projects

    guard = access.action

    def _ep(episode: float | None) -> int:
        n = int(episode or 1)
        if n < 1:
            raise InputError(f"episode {n} does not exist", hint="episodes count from 1")
        return n

    @guard("project.view")
    def review_load(name: str, episode: float) -> tuple[Any, Any, str, str]:
        folder = _project_dir(workspace, name)
        n = _ep(episode)
        render = _render_of(folder, n)
        shots_dir = Workspace(folder).synth_dir(n)
        items = [(str(shots_dir / sh.keyframe), f"{sh.id} · {'✓' if sh.review == 'approved' else '…'}")
                 for sh in render.shots]
        ids = [sh.id for sh in render.shots]
        return items, gr.update(choices=ids, value=ids[0] if ids else None), \
            f"{len(ids)} 个镜头，{len(render.unapproved())} 个待审 · shots, pending review", \
            episode_markdown(folder, n)

    @guard("project.view")
    def review_pick(name: str, episode: float, shot_id: str) -> tuple[str, str, Any]:
        if not (name and shot_id):
            return "", "", None
        folder = _project_dir(workspace, name)
        n = _ep(episode)
        render = _render_of(folder, n)
        shot = next((sh for sh in render.shots if sh.id == shot_id), None)
        if shot is None:
            raise InputError(f"shot {shot_id!r} is not in episode {n}")
        lines = "\n".join(f"- **{html.escape(ln.speaker)}**：{html.escape(ln.text)}" for ln in shot.lines) \
            or "（无台词 · no lines）"
        info = (f"**{shot.id}** · {shot.frames} 帧 frames · {shot.picture} · {shot.motion} · "
                f"审片 {shot.review}\n\n{lines}")
        return info, shot.prompt, str(Workspace(folder).synth_dir(n) / shot.clip)

    def shot_act(action: str) -> Any:
        @guard(_SHOT_ACTION[action])
        def act(name: str, episode: float, shot_id: str, prompt: str, note: str, request: gr.Request) -> str:
            from agents.synth import review_shot

            who = access.who(request)  # before anything changes
            folder = _project_dir(workspace, name)
            n = _ep(episode)
            if not shot_id:
                raise InputError("先选择镜头 · choose a shot")
            if action == "reject" and not (note or "").strip():
                raise InputError("退回需要说明原因 · a rejection needs a reason", hint="write it in the note box")
            out = Workspace(folder).synth_dir(n)
            render = _render_of(folder, n)
            shot = next((sh for sh in render.shots if sh.id == shot_id), None)
            clip = {"clip": out / shot.clip} if shot is not None else {}
            review_shot(out, shot_id, action, prompt=prompt if action == "prompt" else None)
            hashes = {"prompt": hashlib.sha256(prompt.strip().encode("utf-8")).hexdigest()} \
                if action == "prompt" else {}
            Trail(folder).record(who, _SHOT_ACTION[action], episode_subject(n, shot_id), episode=n, files=clip,
                                 hashes=hashes, note=(note or "").strip())
            return _SHOT_DONE[action]
        return act

    @guard("episode.render")
    def rerender(name: str, episode: float, request: gr.Request,
                 progress: gr.Progress = gr.Progress()) -> tuple[Any, str, str]:
        who = access.who(request)
        folder = _project_dir(workspace, name)
        n = _ep(episode)
        studio = Studio(folder, copy.deepcopy(config), progress=lambda f, m: progress(f, desc=m))
        studio.ws.invalidate(f"synth:ep{n:02d}")
        studio.synth(n)
        out = studio.cut(n)
        Trail(folder).record(who, "episode.render", episode_subject(n), episode=n, files={"video": out.video})
        return str(out.video), "已重新合成 · re-rendered", episode_markdown(folder, n)

    def episode_act(action: str) -> Any:
        @guard(action)
        def act(name: str, episode: float, note: str, request: gr.Request) -> tuple[str, str]:
            who = access.who(request)
            folder = _project_dir(workspace, name)
            n = _ep(episode)
            video = Workspace(folder).episode_video(n)
            Trail(folder).transition(who, n, action, files={"video": video}, note=note or "")
            return _EPISODE_DONE[action], episode_markdown(folder, n)
        return act

    @guard("project.view")
    def history(name: str, episode: float) -> str:
        return episode_markdown(_project_dir(workspace, name), _ep(episode))

    gr.Markdown("逐个镜头审看：通过、退回、修改画面提示词或重新生成；再点“重新合成”只重做改动的镜头。"
                "本集提交审核后由审片通过，再交付。"
                " Approve, reject, edit the prompt of, or regenerate any shot; re-render redoes only what changed."
                " Submit the episode for review; a reviewer approves it; then it is delivered.")
    with gr.Row():
        rv_project = gr.Dropdown(list_projects(workspace), label="项目 Project", allow_custom_value=True)
        rv_episode = gr.Number(value=1, precision=0, minimum=1, label="集 Episode")
        rv_load = gr.Button("载入 Load")
    rv_gallery = gr.Gallery(label="镜头 Shots", columns=6, height=260)
    with gr.Row():
        with gr.Column():
            rv_shot = gr.Dropdown([], label="镜头 Shot", allow_custom_value=True)
            rv_info = gr.Markdown()
            rv_prompt = gr.Textbox(label="画面提示词 Visual prompt", lines=3)
            rv_note = gr.Textbox(label="说明（退回时必填）Note (needed to reject)", lines=1)
            with gr.Row():
                rv_approve = gr.Button("通过 Approve", variant="primary")
                rv_reject = gr.Button("退回 Reject")
                rv_save = gr.Button("保存提示词 Save prompt")
                rv_regen = gr.Button("重新生成 Regenerate")
            rv_rerender = gr.Button("重新合成并剪辑 Re-render episode")
            rv_msg = gr.Markdown()
        with gr.Column():
            rv_clip = gr.Video(label="镜头 Shot clip", height=420)
    with gr.Row():
        ep_submit = gr.Button("提交审核 Submit for review")
        ep_approve = gr.Button("本集通过 Approve episode", variant="primary")
        ep_reject = gr.Button("本集退回 Reject episode")
        ep_deliver = gr.Button("交付 Deliver")
    ep_state = gr.Markdown()

    shot_inputs = [rv_project, rv_episode, rv_shot, rv_prompt, rv_note]
    rv_load.click(review_load, [rv_project, rv_episode], [rv_gallery, rv_shot, rv_msg, ep_state],
                  api_name="review_load")
    rv_shot.change(review_pick, [rv_project, rv_episode, rv_shot], [rv_info, rv_prompt, rv_clip],
                   api_name="review_pick")
    for action, button in (("approve", rv_approve), ("reject", rv_reject), ("prompt", rv_save),
                           ("regenerate", rv_regen)):
        button.click(shot_act(action), shot_inputs, [rv_msg], api_name=f"review_{action}")
    rv_rerender.click(rerender, [rv_project, rv_episode], [rv_clip, rv_msg, ep_state], api_name="review_rerender")
    for action, button in (("episode.submit", ep_submit), ("episode.approve", ep_approve),
                           ("episode.reject", ep_reject), ("episode.deliver", ep_deliver)):
        button.click(episode_act(action), [rv_project, rv_episode, rv_note], [rv_msg, ep_state],
                     api_name=action.replace(".", "_"))
    rv_episode.change(history, [rv_project, rv_episode], [ep_state], api_name="episode_history")
    return rv_project
