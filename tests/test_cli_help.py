"""What ``--help`` tells a user, checked against the code it describes: every option states its default
(read from TrainConfig for the trainer's options), the presets read as options rather than Python dicts,
``train`` names the image files its loader reads, ``eval`` the files it writes, ``demo`` and ``lfw-view2``
offer only the options they use; and ``--help`` loads nothing beyond the package (torch and ``_C``)."""

import argparse
import subprocess
import sys
from dataclasses import fields

import pytest

from facenet_ext.__main__ import COMMANDS, main
from facenet_ext.bench.runner import QUICK_BATCHES
from facenet_ext.paths import IMAGE_SUFFIXES
from facenet_ext.train.commands.evaluate import OUTPUT_FILES
from facenet_ext.train.commands.train import as_flags, shown
from facenet_ext.train.config import TrainConfig
from facenet_ext.train.recipes import LFW, QUICK

CONFIG_FIELDS = {f.name for f in fields(TrainConfig)}
# Options with no default to state: their help says when they must be given (--write-pairs is an action).
NO_DEFAULT = {("train", "fold"), ("eval", "checkpoint"), ("eval", "write_pairs")}


def parser_of(command: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser()
    COMMANDS[command][1](p)
    return p


def options(command: str) -> dict[str, argparse.Action]:
    return {a.dest: a for a in parser_of(command)._actions if a.dest != "help"}


def help_text(command: str, capsys) -> str:
    """The command's ``--help``, with its line wrapping undone."""
    with pytest.raises(SystemExit) as exc:
        main([command, "--help"])
    assert exc.value.code == 0
    return " ".join(capsys.readouterr().out.split())


@pytest.mark.parametrize("command", ["train", "lfw-view2", "eval", "demo"])
def test_every_option_states_its_default(command):
    defaults = TrainConfig()
    for dest, action in options(command).items():
        assert action.help, f"{command} --{dest} has no help"
        if isinstance(action, argparse._StoreTrueAction) or action.required or (command, dest) in NO_DEFAULT:
            continue
        default = getattr(defaults, dest) if dest in CONFIG_FIELDS else action.default
        if default is None:  # the help says what unset means
            assert "default" in action.help, f"{command} --{dest}: {action.help}"
        else:
            assert f"default {shown(default)}" in action.help, f"{command} --{dest}: {action.help}"


def test_presets_read_as_options():
    train = options("train")
    assert as_flags(QUICK) in train["quick"].help and "--steps-per-epoch 25" in train["quick"].help
    lfw = as_flags({k: v for k, v in LFW.items() if k != "protocol"})
    assert lfw in train["protocol"].help and "--flip-eval" in train["protocol"].help
    assert not any(c in train[name].help for name in ("quick", "protocol") for c in ("{", "}", "': "))  # no dict


def test_train_help_names_every_image_suffix(capsys):
    text = help_text("train", capsys)
    assert all(suffix in text for suffix in IMAGE_SUFFIXES)


def test_eval_help_names_every_file_eval_writes(capsys):
    assert all(name in options("eval")["out"].help for name in OUTPUT_FILES)
    text = help_text("eval", capsys)
    written = text[text.index("Files written into --out:") :]
    assert all(f"{name}:" in written for name in OUTPUT_FILES)


def test_demo_offers_only_what_the_demo_uses(capsys):
    demo = options("demo")
    assert "quick" not in demo  # its benchmark is always the quick one
    assert f"default {','.join(map(str, QUICK_BATCHES))}" in demo["batch"].help
    assert all(f"OUT/{part}" in demo["out"].help for part in ("bench", "train", "lfw-view1"))
    assert set(options("bench")) - set(demo) == {"quick"}  # every other benchmark option still works


def test_lfw_view2_offers_only_what_it_uses():
    view2, train = options("lfw-view2"), options("train")
    assert set(train) - set(view2) == {"resume", "overwrite", "quick", "protocol", "fold", "holdout"}
    assert set(view2) - set(train) == {"folds"}
    assert view2["data"].required and view2["out"].required
    with pytest.raises(SystemExit):
        main(["lfw-view2", "--out", "somewhere"])


def test_help_imports_nothing_beyond_the_package():
    commands = ["", *COMMANDS]
    code = (
        "import sys\n"
        "from facenet_ext.__main__ import main\n"
        f"for command in {commands!r}:\n"
        "    try:\n"
        "        main([command, '--help'] if command else ['--help'])\n"
        "    except SystemExit:\n"
        "        pass\n"
        "print(sorted(m for m in ('sklearn', 'scipy', 'matplotlib', 'PIL') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True).stdout
    assert out.splitlines()[-1] == "[]"


def test_demo_states_each_default_once(capsys):
    text = help_text("demo", capsys)
    assert text.count("(default all)") == 1, text


def test_lfw_view2_states_lfw_defaults_only(capsys):
    """lfw-view2 reads LFW alone: no defaults of an image folder or the digits in its help."""
    text = help_text("lfw-view2", capsys)
    for train_only in ("for an image folder", "32 for the digits", "if every image is grayscale"):
        assert train_only not in text, train_only
    assert "stored square side (default: 64)" in text and "1 or 3 (default: 1)" in text
