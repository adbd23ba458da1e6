"""The browser studio (Gradio): paste or upload a novel, make an episode, watch it, download it.

Bound to 127.0.0.1 by default. Only the workspace folder is served to the browser.
"""

from __future__ import annotations

import copy
import logging
import re
import threading
from pathlib import Path
from typing import Any

from core.config import Config, load_config
from core.errors import ReelForgeError
from core.screenplay import Series
from core.workspace import Workspace

log = logging.getLogger(__name__)

SAMPLE = Path(__file__).with_name("samples") / "sample_novel.txt"
SIZES = {"竖屏 9:16 · 1080x1920": (1080, 1920), "竖屏 9:16 · 720x1280": (720, 1280), "竖屏 9:16 · 540x960": (540, 960),
         "横屏 16:9 · 1920x1080": (1920, 1080), "横屏 16:9 · 1280x720": (1280, 720), "方形 1:1 · 1080x1080": (1080, 1080)}

_cancel: dict[str, threading.Event] = {}


def _safe_name(name: str) -> str:
    cleaned = re.sub(r"[^\w\u4e00-\u9fff-]+", "_", name.strip())[:60].strip("_")
    return cleaned or "project"


def list_projects(root: Path) -> list[str]:
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if (p / "project.json").is_file())


def project_status(root: Path, name: str) -> str:
    ws = Workspace(root / name)
    if not ws.exists():
        return "（尚无项目 · no project yet）"
    rows = ["| 阶段 stage | 状态 status | 完成时间 finished |", "|---|---|---|"]
    for stage, rec in sorted(ws.manifest().get("stages", {}).items()):
        rows.append(f"| {stage} | {rec.get('status', '?')} | {rec.get('finished_at', '')} |")
    outs = sorted(ws.out_dir.glob("*.mp4")) if ws.out_dir.exists() else []
    rows.append("")
    rows.append("成片 episodes: " + (", ".join(p.name for p in outs) if outs else "—"))
    return "\n".join(rows)


def build_app(config: Config, workspace: Path, sample: bool = False) -> Any:
    import gradio as gr

    from agents.studio import Studio, StudioSettings
    from core.workspace import sha256_file
    from ui.providers_panel import (
        LOCAL,
        VOICE_HEADERS,
        apply_voice_rows,
        choice_key,
        provider_choices,
        quote_for,
        review_sheet_in,
        sheet_items,
        voice_rows,
        wants_providers,
    )

    workspace.mkdir(parents=True, exist_ok=True)
    sample_text = SAMPLE.read_text(encoding="utf-8") if sample and SAMPLE.exists() else ""

    def prepare(novel_file: str | None, novel_text: str, name: str, episodes: int, seconds: float,
                size_label: str, tts: str, enhance: bool, image: str, video_model: str, voice: str,
                budget: str) -> tuple[str, Workspace, Path, Any, str]:
        name = _safe_name(name or (Path(novel_file).stem if novel_file else "sample"))
        ws = Workspace(workspace / name)
        ws.root.mkdir(parents=True, exist_ok=True)
        if novel_file:
            source = Path(novel_file)
        elif novel_text.strip():
            source = ws.root / "pasted_novel.txt"
            source.write_text(novel_text, encoding="utf-8")
        else:
            raise gr.Error("请上传小说文件或粘贴文本 · upload a novel or paste its text")
        w, h = SIZES.get(size_label, (1080, 1920))
        try:
            settings = StudioSettings.from_config(
                config, episodes=int(episodes), episode_seconds=float(seconds), width=w, height=h, tts=tts,
                enhance_scale=2.0 if enhance else 1.0, image=image or "", video=video_model or "",
                voice=voice or "", budget=(budget or "").strip()).validate()
        except ReelForgeError as e:
            raise gr.Error(f"{e.message}" + (f" — {e.hint}" if e.hint else "")) from e
        key = choice_key(sha256_file(source), episodes, seconds, (w, h), image, video_model, voice, budget)
        return name, ws, source, settings, key

    def quote(novel_file: str | None, novel_text: str, name: str, episodes: int, seconds: float, size_label: str,
              tts: str, enhance: bool, image: str, video_model: str, voice: str, budget: str) -> tuple[str, str]:
        name, ws, source, settings, key = prepare(novel_file, novel_text, name, episodes, seconds, size_label, tts,
                                                  enhance, image, video_model, voice, budget)
        try:
            return quote_for(Studio(ws, copy.deepcopy(config)), source, settings), key
        except ReelForgeError as e:
            raise gr.Error(f"{e.message}" + (f" — {e.hint}" if e.hint else "")) from e

    def make(novel_file: str | None, novel_text: str, name: str, episodes: int, seconds: float, size_label: str,
             tts: str, enhance: bool, image: str = "", video_model: str = "", voice: str = "", budget: str = "",
             quoted: str = "", progress: gr.Progress = gr.Progress()) -> tuple[Any, ...]:
        name, ws, source, settings, key = prepare(novel_file, novel_text, name, episodes, seconds, size_label, tts,
                                                  enhance, image, video_model, voice, budget)
        if wants_providers(image, video_model, voice) and quoted != key:
            # paid providers: the quote first; Make again with the same choices goes ahead
            table, key = quote(novel_file, novel_text, name, episodes, seconds, size_label, tts, enhance, image,
                               video_model, voice, budget)
            same = gr.update()
            return (None, [], table + "\n\n**请确认报价后再次点击“生成” · check the quote, then press Make again**",
                    [], same, same, same, key)
        cancel = threading.Event()
        _cancel[name] = cancel

        def report(fraction: float, message: str) -> None:
            progress(fraction, desc=message)

        try:
            result = Studio(ws, copy.deepcopy(config), progress=report, cancel=cancel).make(source, settings, command="ui make")
        except ReelForgeError as e:
            raise gr.Error(f"{e.message}" + (f" — {e.hint}" if e.hint else "")) from e
        finally:
            _cancel.pop(name, None)
        finals = result.finals
        reports = [r.html_path for r in result.qc if r.html_path]  # the delivery reports, to download
        files = [str(p) for p in finals + result.subtitles + [ws.screenplay_path] + reports if Path(p).exists()]
        lines = ["| 阶段 stage | 结果 | 用时 s | 引擎 engine |", "|---|---|---|---|"]
        for st in result.stages:
            lines.append(f"| {st.stage} | {st.status} | {st.seconds:.1f} | {st.engine} |")
        for r in result.qc:
            lines.append("")
            lines.append(f"**交付质检 QC 第{r.episode}集 ({r.platform})**: "
                         + ("通过 passed" if r.passed else "未通过 failed: " + ", ".join(r.failed()))
                         + (f" — {r.html_path.name}" if r.html_path else ""))
        if result.notes:
            lines.append("")
            lines.append("**提示 notes**")
            lines.extend(f"- {n}" for n in result.notes)
        gallery = _gallery(ws, 1)
        choices = list_projects(workspace)
        return (str(finals[0]) if finals else None, files, "\n".join(lines), gallery,
                gr.update(choices=choices, value=name), ws.screenplay_path.read_text(encoding="utf-8"),
                gr.update(choices=choices, value=name), quoted)

    def stop(name: str) -> str:
        event = _cancel.get(_safe_name(name or ""))
        if event is None:
            return "没有正在运行的任务 · nothing is running"
        event.set()
        return "正在停止，已完成的镜头会保留 · stopping; finished shots are kept"

    def load_project(name: str) -> tuple[str, str, Any, Any]:
        if not name:
            return "", "", [], None
        ws = Workspace(workspace / name)
        text = ws.screenplay_path.read_text(encoding="utf-8") if ws.screenplay_path.exists() else ""
        video = ws.episode_video(1)
        return text, project_status(workspace, name), _gallery(ws, 1), (str(video) if video.exists() else None)

    def save_screenplay(name: str, text: str) -> str:
        if not name:
            raise gr.Error("先选择项目 · choose a project first")
        ws = Workspace(workspace / name)
        try:
            series = Series.from_json(text, origin="编辑的剧本 edited screenplay")
        except ReelForgeError as e:
            raise gr.Error(str(e)) from e
        series.save(ws.screenplay_path)
        return "已保存；再次点击“生成”只重做受影响的阶段 · saved; Make re-runs only what changed"

    def voices_load(name: str, model: str) -> list[list[str]]:
        if not name:
            raise gr.Error("先选择项目 · choose a project first")
        ws = Workspace(workspace / name)
        if not ws.screenplay_path.exists():
            raise gr.Error("这个项目还没有剧本 · this project has no screenplay yet")
        try:
            return voice_rows(Series.load(ws.screenplay_path), model or "")
        except ReelForgeError as e:
            raise gr.Error(f"{e.message}" + (f" — {e.hint}" if e.hint else "")) from e

    def voices_save(name: str, rows: Any) -> tuple[str, str]:
        if not name:
            raise gr.Error("先选择项目 · choose a project first")
        ws = Workspace(workspace / name)
        try:
            series = Series.load(ws.screenplay_path)
            changed = apply_voice_rows(series, list(rows or []))
        except ReelForgeError as e:
            raise gr.Error(f"{e.message}" + (f" — {e.hint}" if e.hint else "")) from e
        if changed:
            series.save(ws.screenplay_path)
        return (f"已保存 {changed} 个角色的配音；再次生成只重做受影响的集 · {changed} voices saved",
                ws.screenplay_path.read_text(encoding="utf-8"))

    with gr.Blocks(title="ReelForge 影锻 · AI 微短剧工作室") as demo:
        gr.Markdown("# ReelForge 影锻 · AI 微短剧工作室\n小说 → 剧本 → 分镜配音 → 成片，全程离线可用。"
                    " Novel → screenplay → voiced shots → episode, offline.")
        with gr.Tab("制作 Make"):
            with gr.Row():
                with gr.Column(scale=1):
                    novel_file = gr.File(label="上传小说 Upload novel (.txt)", file_types=[".txt"], type="filepath")
                    novel_text = gr.Textbox(label="或粘贴文本 Or paste text", lines=10, value=sample_text,
                                            max_lines=20)
                    name = gr.Textbox(label="项目名 Project", value="sample" if sample else "")
                    with gr.Row():
                        episodes = gr.Slider(1, 20, value=1, step=1, label="集数 Episodes")
                        seconds = gr.Slider(20, 300, value=60 if sample else 90, step=5, label="每集秒数 Seconds/episode")
                    size = gr.Dropdown(list(SIZES), value="竖屏 9:16 · 720x1280" if sample else list(SIZES)[0],
                                       label="画幅 Format")
                    tts = gr.Dropdown(["auto", "espeak-ng", "espeakng-loader", "silence"], value=config.tts.engine,
                                      label="配音引擎 Voice engine")
                    enhance = gr.Checkbox(label="超分 x2 Upscale x2 (neural SR)", value=False)
                    with gr.Accordion("生成服务 Generation providers（云端 API / 本地 ComfyUI）", open=False):
                        gr.Markdown("选择模型后，“生成”会先给出报价，确认后再点一次才会发送计费请求。密钥从环境变量或"
                                    " ~/.config/reelforge/secrets.toml 读取。 Pick models: Make shows the quote "
                                    "first and sends nothing billable until pressed again. Keys come from the "
                                    "environment or your secrets file.")
                        image_model = gr.Dropdown(provider_choices(config, "image"), value=LOCAL,
                                                  label="图像 Images (keyframes, character sheets)")
                        video_model = gr.Dropdown(provider_choices(config, "video"), value=LOCAL,
                                                  label="视频 Video (image-to-video)")
                        voice_model = gr.Dropdown(provider_choices(config, "voice"), value=LOCAL,
                                                  label="配音 Voices (one voice per character)")
                        budget = gr.Textbox(label="预算 Budget ¥ (optional)", value="", placeholder="e.g. 50")
                        quote_btn = gr.Button("报价 Quote")
                    quoted = gr.State("")
                    with gr.Row():
                        go = gr.Button("生成 Make", variant="primary")
                        halt = gr.Button("停止 Stop")
                    stop_msg = gr.Markdown()
                with gr.Column(scale=1):
                    video = gr.Video(label="成片 Episode", height=560)
                    files = gr.File(label="下载 Downloads", file_count="multiple")
                    report = gr.Markdown()
            gallery = gr.Gallery(label="分镜 Shots", columns=6, height=300)
        with gr.Tab("剧本 Screenplay"):
            gr.Markdown("选择项目，编辑剧本 JSON 后保存，再回到“制作”点击生成：只重做改动影响的镜头。"
                        " Edit the screenplay, save, then Make again: only affected shots re-render.")
            project = gr.Dropdown(list_projects(workspace), label="项目 Project", allow_custom_value=True)
            status = gr.Markdown()
            editor = gr.Code(language="json", label="screenplay.json", lines=24)
            save = gr.Button("保存剧本 Save screenplay")
            saved = gr.Markdown()
            with gr.Accordion("角色配音 Character voices", open=False):
                gr.Markdown("每个角色一个音色：留空则按性别和年龄自动分配；可写音色 ID，或“提供方:音色”只对该提供方生效。"
                            " One voice per character: empty casts a default from gender and age; write a voice "
                            "id, or PROVIDER:VOICE to apply it to that provider only.")
                vc_model = gr.Dropdown(provider_choices(config, "voice"), value=LOCAL,
                                       label="配音模型 Voice model (shows its default voices)")
                vc_table = gr.Dataframe(headers=VOICE_HEADERS, datatype=["str", "str", "str", "str"], type="array",
                                        interactive=True, label="角色 Characters")
                with gr.Row():
                    vc_load = gr.Button("载入角色 Load characters")
                    vc_save = gr.Button("保存配音 Save voices")
                vc_msg = gr.Markdown()
        with gr.Tab("审片 Review"):
            gr.Markdown("逐个镜头审看：通过、修改画面提示词或重新生成；再点“重新合成”只重做改动的镜头。"
                        " Approve, edit the prompt of, or regenerate any shot; re-render redoes only what changed.")
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
                    with gr.Row():
                        rv_approve = gr.Button("通过 Approve", variant="primary")
                        rv_save = gr.Button("保存提示词 Save prompt")
                        rv_regen = gr.Button("重新生成 Regenerate")
                    rv_rerender = gr.Button("重新合成并剪辑 Re-render episode")
                    rv_msg = gr.Markdown()
                with gr.Column():
                    rv_clip = gr.Video(label="镜头 Shot clip", height=420)
            with gr.Accordion("角色设定图 Character sheets（生成服务 providers）", open=False):
                gr.Markdown("设定图作为之后每个镜头的参考图。要求审片时，通过之前不会生成任何关键帧或视频。"
                            " Each sheet is the reference for every later shot; with review required, no keyframe "
                            "or video is paid for until the sheets are approved.")
                sh_gallery = gr.Gallery(label="设定图 Sheets", columns=6, height=260)
                with gr.Row():
                    sh_name = gr.Dropdown([], label="角色 Character", allow_custom_value=True)
                    sh_load = gr.Button("载入 Load")
                    sh_approve = gr.Button("通过 Approve", variant="primary")
                    sh_regen = gr.Button("重新生成 Regenerate")
                sh_msg = gr.Markdown()
        with gr.Tab("账本 Ledger"):
            try:
                from ui.ledger_tab import build_ledger_tab

                build_ledger_tab(str(Path(config.ledger.db).expanduser()))
            except ImportError:
                gr.Markdown("账本模块未安装 · the ledger module is not installed in this build")
        with gr.Tab("环境 Doctor"):
            doc = gr.Markdown()
            refresh = gr.Button("检查 Check")

        def review_load(name: str, episode: float) -> tuple[Any, Any, str]:
            if not name:
                raise gr.Error("先选择项目 · choose a project first")
            render = _render_of(workspace / name, int(episode or 1))
            folder = Workspace(workspace / name).synth_dir(int(episode or 1))
            items = [(str(folder / sh.keyframe), f"{sh.id} · {'✓' if sh.review == 'approved' else '…'}")
                     for sh in render.shots]
            ids = [sh.id for sh in render.shots]
            return items, gr.update(choices=ids, value=ids[0] if ids else None), \
                f"{len(ids)} 个镜头，{len(render.unapproved())} 个待审 · shots, pending review"

        def review_pick(name: str, episode: float, shot_id: str) -> tuple[str, str, Any]:
            if not (name and shot_id):
                return "", "", None
            render = _render_of(workspace / name, int(episode or 1))
            folder = Workspace(workspace / name).synth_dir(int(episode or 1))
            shot = next(sh for sh in render.shots if sh.id == shot_id)
            lines = "\n".join(f"- **{ln.speaker}**：{ln.text}" for ln in shot.lines) or "（无台词 · no lines）"
            info = (f"**{shot.id}** · {shot.frames} 帧 frames · {shot.picture} · {shot.motion} · "
                    f"审片 {shot.review}\n\n{lines}")
            return info, shot.prompt, str(folder / shot.clip)

        def review_act(action: str) -> Any:
            def act(name: str, episode: float, shot_id: str, prompt: str) -> str:
                from agents.synth import review_shot

                if not (name and shot_id):
                    raise gr.Error("先选择项目和镜头 · choose a project and a shot")
                try:
                    review_shot(Workspace(workspace / name).synth_dir(int(episode or 1)), shot_id, action,
                                prompt=prompt if action == "prompt" else None)
                except ReelForgeError as e:
                    raise gr.Error(str(e)) from e
                return {"approve": "已通过 · approved", "prompt": "提示词已保存，重新合成后生效 · saved",
                        "regenerate": "将用新种子重新生成 · a new seed on the next render"}[action]
            return act

        def review_rerender(name: str, episode: float, progress: gr.Progress = gr.Progress()) -> tuple[Any, str]:
            if not name:
                raise gr.Error("先选择项目 · choose a project first")
            studio = Studio(workspace / name, config, progress=lambda f, m: progress(f, desc=m))
            try:
                studio.ws.invalidate(f"synth:ep{int(episode or 1):02d}")
                studio.synth(int(episode or 1))
                out = studio.cut(int(episode or 1))
            except ReelForgeError as e:
                raise gr.Error(str(e)) from e
            return str(out.video), "已重新合成 · re-rendered"

        def sheets_load(name: str) -> tuple[Any, Any]:
            if not name:
                raise gr.Error("先选择项目 · choose a project first")
            try:
                items = sheet_items(workspace / name)
            except ReelForgeError as e:
                raise gr.Error(str(e)) from e
            names = [caption.split(" · ")[0] for _, caption in items]
            return items, gr.update(choices=names, value=names[0] if names else None)

        def sheet_act(action: str) -> Any:
            def act(name: str, character: str) -> tuple[str, Any]:
                if not (name and character):
                    raise gr.Error("先选择项目和角色 · choose a project and a character")
                try:
                    message = review_sheet_in(workspace / name, character, action)
                    return message, sheet_items(workspace / name)
                except ReelForgeError as e:
                    raise gr.Error(f"{e.message}" + (f" — {e.hint}" if e.hint else "")) from e
            return act

        sh_load.click(sheets_load, [rv_project], [sh_gallery, sh_name], api_name="sheets_load")
        sh_approve.click(sheet_act("approve"), [rv_project, sh_name], [sh_msg, sh_gallery], api_name="sheet_approve")
        sh_regen.click(sheet_act("regenerate"), [rv_project, sh_name], [sh_msg, sh_gallery],
                       api_name="sheet_regenerate")
        rv_load.click(review_load, [rv_project, rv_episode], [rv_gallery, rv_shot, rv_msg])
        rv_shot.change(review_pick, [rv_project, rv_episode, rv_shot], [rv_info, rv_prompt, rv_clip])
        rv_approve.click(review_act("approve"), [rv_project, rv_episode, rv_shot, rv_prompt], [rv_msg],
                         api_name="review_approve")
        rv_save.click(review_act("prompt"), [rv_project, rv_episode, rv_shot, rv_prompt], [rv_msg],
                      api_name="review_prompt")
        rv_regen.click(review_act("regenerate"), [rv_project, rv_episode, rv_shot, rv_prompt], [rv_msg],
                       api_name="review_regenerate")
        rv_rerender.click(review_rerender, [rv_project, rv_episode], [rv_clip, rv_msg])
        make_inputs = [novel_file, novel_text, name, episodes, seconds, size, tts, enhance, image_model, video_model,
                       voice_model, budget]
        go.click(make, [*make_inputs, quoted], [video, files, report, gallery, project, editor, rv_project, quoted],
                 api_name="make")
        quote_btn.click(quote, make_inputs, [report, quoted], api_name="quote")
        halt.click(stop, [name], [stop_msg])
        project.change(load_project, [project], [editor, status, gallery, video])
        save.click(save_screenplay, [project, editor], [saved])
        vc_load.click(voices_load, [project, vc_model], [vc_table], api_name="voices_load")
        vc_model.change(lambda n, m: voices_load(n, m) if n else [], [project, vc_model], [vc_table])
        vc_save.click(voices_save, [project, vc_table], [vc_msg, editor], api_name="voices_save")
        refresh.click(_doctor_markdown, [], [doc])
        demo.load(_doctor_markdown, [], [doc])
    return demo


def _render_of(project: Path, episode: int) -> Any:
    from agents.synth import EpisodeRender

    path = Workspace(project).synth_dir(episode) / "render.json"
    if not path.exists():
        import gradio as gr

        raise gr.Error(f"第{episode}集还没有合成 · episode {episode} has not been rendered yet")
    return EpisodeRender.load(path)


def _gallery(ws: Workspace, episode: int) -> list[tuple[str, str]]:
    folder = ws.synth_dir(episode) / "shots"
    if not folder.is_dir():
        return []
    items = []
    for png in sorted(folder.glob("*.png")):
        items.append((str(png), png.stem))
    return items


def _doctor_markdown() -> str:
    from ui.doctor import doctor_report, format_report

    return "```\n" + format_report(doctor_report(load_config())) + "\n```"


def launch(*, host: str = "127.0.0.1", port: int = 7860, sample: bool = False, workspace: str | None = None,
           config: Config | None = None) -> None:
    import gradio as gr

    config = config or load_config()
    root = Path(workspace or config.workspace.root).expanduser().resolve()
    root.mkdir(parents=True, exist_ok=True)
    demo = build_app(config, root, sample=sample)
    if host not in {"127.0.0.1", "localhost", "::1"}:
        log.warning("the studio is listening on %s: anyone who can reach this address can use it", host)
    log.info("studio: http://%s:%d  (workspace %s)", host, port, root)
    demo.queue(default_concurrency_limit=1).launch(server_name=host, server_port=port, allowed_paths=[str(root)],
                                                   theme=gr.themes.Soft(), inbrowser=False, show_error=True)
