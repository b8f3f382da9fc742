"""An image's tag is the hash of its inputs: the same inputs give the same tag, a change to any
of them (its Dockerfile, a file of its build context, its parent) gives another, and caches of
compiled Python do not count."""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast

import pytest

from harness.runtime import images
from harness.runtime.images import ImageError, Images, ImageSpec

pytestmark = pytest.mark.unit


@pytest.fixture
def inputs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in ("java", "app"):
        (tmp_path / "dockerfiles" / name).mkdir(parents=True)
        (tmp_path / "dockerfiles" / name / "Dockerfile").write_text(f"ARG BASE\nFROM ${{BASE}}\n# {name}\n")
    code = tmp_path / "code"
    (code / "pkg").mkdir(parents=True)
    (code / "pkg" / "mod.py").write_text("x = 1\n")
    monkeypatch.setattr(images, "DOCKERFILES", tmp_path / "dockerfiles")
    monkeypatch.setattr(images, "specs", lambda: [ImageSpec("java", "base"),
                                                   ImageSpec("app", "java", (("code", code),))])
    return tmp_path


def tags() -> dict[str, str]:
    imgs = Images(cast(Any, None))   # tags are computed without the engine
    return {name: imgs.tag(name) for name in imgs.names}


def test_the_same_inputs_give_the_same_tags(inputs: Path) -> None:
    first = tags()
    assert first == tags()
    assert first["app"].startswith("feedlab/app:") and len(first["app"].split(":")[1]) == 16
    assert len(set(first.values())) == 3


def test_a_changed_context_file_changes_that_image_only(inputs: Path) -> None:
    before = tags()
    (inputs / "code" / "pkg" / "mod.py").write_text("x = 2\n")
    after = tags()
    assert after["app"] != before["app"]
    assert after["java"] == before["java"] and after["base"] == before["base"]


def test_a_new_file_or_a_renamed_one_changes_the_tag(inputs: Path) -> None:
    before = tags()
    (inputs / "code" / "pkg" / "mod.py").rename(inputs / "code" / "pkg" / "other.py")
    renamed = tags()
    (inputs / "code" / "pkg" / "new.py").write_text("")
    added = tags()
    assert len({before["app"], renamed["app"], added["app"]}) == 3


def test_a_changed_parent_changes_its_children(inputs: Path) -> None:
    before = tags()
    (inputs / "dockerfiles" / "java" / "Dockerfile").write_text("ARG BASE\nFROM ${BASE}\nRUN true\n")
    after = tags()
    assert after["java"] != before["java"] and after["app"] != before["app"]


def test_compiled_python_caches_do_not_count(inputs: Path) -> None:
    before = tags()
    (inputs / "code" / "pkg" / "__pycache__").mkdir()
    (inputs / "code" / "pkg" / "__pycache__" / "mod.cpython-311.pyc").write_bytes(b"\0" * 16)
    assert tags() == before


def test_a_missing_context_is_named(inputs: Path) -> None:
    (inputs / "code" / "pkg" / "mod.py").unlink()
    (inputs / "code" / "pkg").rmdir()
    (inputs / "code").rmdir()
    with pytest.raises(ImageError, match="code is missing"):
        tags()
