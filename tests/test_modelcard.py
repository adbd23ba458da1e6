"""Model licences come from the model card or the LICENSE file, never a placeholder."""

from __future__ import annotations

from pathlib import Path

import pytest

from models.modelcard import is_placeholder_licence, model_card_licence, read_model_licence


def _card(folder: Path, front: str, body: str = "# A model\n") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "README.md").write_text(f"---\n{front}---\n{body}", encoding="utf-8")
    return folder


@pytest.mark.parametrize(("front", "want"), [
    ("license: apache-2.0\ntags:\n- text-to-image\n", "apache-2.0"),
    ("license: 'creativeml-openrail-m'\n", "creativeml-openrail-m"),
    ("license:\n- mit\n- apache-2.0\n", "mit, apache-2.0"),
    ("license: [mit, cc-by-4.0]\n", "mit, cc-by-4.0"),
    ("license: other\nlicense_name: flux-1-dev-non-commercial-license\nlicense_link: LICENSE.md\n",
     "other: flux-1-dev-non-commercial-license (LICENSE.md)"),
])
def test_front_matter_licences(tmp_path: Path, front: str, want: str) -> None:
    folder = _card(tmp_path / "m", front)
    found = read_model_licence(folder)
    assert found.licence == want and found.known and found.source == str(folder / "README.md")
    # a single weights file is looked up in its folder
    (folder / "model.safetensors").write_bytes(b"")
    assert model_card_licence(folder / "model.safetensors") == want


def test_licence_file_when_the_card_names_none(tmp_path: Path) -> None:
    folder = _card(tmp_path / "m", "tags:\n- video\n")
    (folder / "LICENSE").write_text("\n                                 Apache License\n"
                                    "                           Version 2.0, January 2004\n", encoding="utf-8")
    assert read_model_licence(folder).licence == "Apache-2.0"
    (folder / "LICENSE").write_text("Copyright (c) 2024\n\nPermission is hereby granted, free of charge, to any "
                                    "person obtaining a copy", encoding="utf-8")
    assert read_model_licence(folder).licence == "MIT"
    (folder / "LICENSE").write_text("# STABILITY AI COMMUNITY LICENSE AGREEMENT\nLast Updated: July 5, 2024\n",
                                    encoding="utf-8")
    found = read_model_licence(folder)
    assert found.licence == "STABILITY AI COMMUNITY LICENSE AGREEMENT (LICENSE)" and found.source.endswith("LICENSE")


def test_no_card_is_reported_as_unknown_with_the_folder(tmp_path: Path) -> None:
    (tmp_path / "bare").mkdir()
    found = read_model_licence(tmp_path / "bare")
    assert not found.known and found.licence.startswith("unknown: ") and str(tmp_path / "bare") in found.licence
    assert not is_placeholder_licence(found.licence)  # it says what is missing and where
    # a card whose licence is itself a placeholder does not count
    folder = _card(tmp_path / "vague", "license: other\n")
    assert not read_model_licence(folder).known


@pytest.mark.parametrize("text", ["", "n/a", "N/A", "unknown", "see the model card", "see model card",
                                  "see /models/x/README.md", "TBD", "todo", "?", "other", "none"])
def test_placeholders_are_recognised(text: str) -> None:
    assert is_placeholder_licence(text)


@pytest.mark.parametrize("text", ["apache-2.0", "BSD-3-Clause (Real-ESRGAN)", "GPL-3.0-or-later (espeak-ng)",
                                  "none: a silent track, no voice model", "Apache-2.0 (ReelForge)"])
def test_real_licences_are_not_placeholders(text: str) -> None:
    assert not is_placeholder_licence(text)


def test_the_local_llm_client_uses_the_shared_reader() -> None:
    from agents.script.llm import local

    assert local.model_card_licence is model_card_licence
