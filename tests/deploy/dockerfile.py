"""A small Dockerfile reader: instructions (continuations joined), the comments above each, and stages.

Enough for the tests to check the recipe and to run its `# recipe:` steps; not a general parser (no
heredocs, no escape-directive changes).
"""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path

_VARIABLE = re.compile(r"\$\{(\w+)\}|\$(\w+)")


@dataclass(frozen=True)
class Instruction:
    keyword: str
    value: str
    line: int
    comments: tuple[str, ...]

    def words(self) -> list[str]:
        return shlex.split(self.value)

    def exec_form(self) -> list[str]:
        """The JSON array of an exec-form ENTRYPOINT/CMD (a shell-form value is an error)."""
        parsed = json.loads(self.value)
        assert isinstance(parsed, list), self.value
        return [str(word) for word in parsed]

    def options(self) -> dict[str, str]:
        """Leading `--name=value` flags (COPY --from=..., HEALTHCHECK --interval=...)."""
        return dict(re.findall(r"--([a-z-]+)=(\S+)", self.value.split(" CMD ")[0]))

    def pairs(self) -> dict[str, str]:
        """KEY=VALUE pairs of ENV, ARG and LABEL (an ARG without default maps to "")."""
        result: dict[str, str] = {}
        for word in self.words():
            name, _, value = word.partition("=")
            result[name] = value
        return result


@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[Instruction] = field(default_factory=list)

    def all(self, keyword: str) -> list[Instruction]:
        return [i for i in self.instructions if i.keyword == keyword]

    def last(self, keyword: str) -> Instruction:
        found = self.all(keyword)
        assert found, f"stage {self.name or self.base}: no {keyword}"
        return found[-1]

    def environment(self, inherited: dict[str, str]) -> dict[str, str]:
        """The stage's ENV as a container sees it: `$VAR`/`${VAR}` expanded from the stage's ARG defaults,
        earlier ENV and `inherited` (the base image's variables, such as PATH)."""
        known, env = dict(inherited), {}
        for instruction in self.instructions:
            if instruction.keyword not in ("ARG", "ENV"):
                continue
            for name, value in instruction.pairs().items():
                if instruction.keyword == "ARG":
                    known.setdefault(name, value)
                    continue
                env[name] = known[name] = _VARIABLE.sub(
                    lambda m: known.get(m.group(1) or m.group(2), ""), value
                )
        return env

    def merged(self, keyword: str) -> dict[str, str]:
        result: dict[str, str] = {}
        for instruction in self.all(keyword):
            result.update(instruction.pairs())
        return result


@dataclass
class Dockerfile:
    global_args: dict[str, str]
    stages: list[Stage]
    instructions: list[Instruction]
    comments: list[tuple[int, str]]

    @property
    def final_stage(self) -> Stage:
        return self.stages[-1]

    def stage(self, name: str) -> Stage:
        found = [stage for stage in self.stages if stage.name == name]
        assert found, f"no stage named {name!r}"
        return found[0]

    def recipe(self, tag: str) -> tuple[Stage, Instruction]:
        """The instruction tagged `# recipe: <tag>` and its stage."""
        for stage in self.stages:
            for instruction in stage.instructions:
                if f"recipe: {tag}" in instruction.comments:
                    return stage, instruction
        raise AssertionError(f"no instruction tagged '# recipe: {tag}'")


def parse_dockerfile(path: Path) -> Dockerfile:
    instructions, comments = _instructions(path.read_text(encoding="utf-8"))
    global_args: dict[str, str] = {}
    stages: list[Stage] = []
    for instruction in instructions:
        if instruction.keyword == "FROM":
            words = instruction.value.split()
            name = words[2] if len(words) >= 3 and words[1].upper() == "AS" else None
            stages.append(Stage(words[0], name))
        elif not stages:
            assert instruction.keyword == "ARG", f"line {instruction.line}: only ARG may precede FROM"
            global_args.update(instruction.pairs())
        if stages:
            stages[-1].instructions.append(instruction)
    return Dockerfile(global_args, stages, instructions, comments)


def _instructions(text: str) -> tuple[list[Instruction], list[tuple[int, str]]]:
    instructions: list[Instruction] = []
    all_comments: list[tuple[int, str]] = []
    pending: list[str] = []
    buffer: list[str] = []
    start = 0
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if line.startswith("#"):
            comment = line.lstrip("#").strip()
            all_comments.append((number, comment))
            if not buffer:
                pending.append(comment)
            continue
        if not line:
            if not buffer:
                pending = []
            continue
        if not buffer:
            start = number
        buffer.append(line.removesuffix("\\").strip())
        if line.endswith("\\"):
            continue
        keyword, _, value = " ".join(buffer).partition(" ")
        instructions.append(Instruction(keyword.upper(), value.strip(), start, tuple(pending)))
        buffer, pending = [], []
    return instructions, all_comments
