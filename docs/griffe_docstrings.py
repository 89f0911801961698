"""Griffe extension for the API reference: reads the package's docstring conventions.

Two conventions of the package's Google-style docstrings that griffe does not read by itself:

- grouped arguments, `view_a, view_b: the two views.`: split into one entry per name, each
  with the shared description, so that every name is still checked against the signature
  (a name the function does not have still fails `mkdocs build --strict`);
- doctest examples (`>>>` lines and their output) written as plain text after `Example:`:
  wrapped in a `pycon` code block, so Markdown does not read `>>>` as a block quote.

Loaded by `mkdocs.yml` (`plugins › mkdocstrings › handlers › python › options › extensions`);
it changes only the text griffe renders, never the package.
"""

import re

import griffe

_SECTION = re.compile(
    r"^(\s*)(Args|Arguments|Parameters|Keyword Args|Keyword Arguments|Other Parameters):\s*$"
)
_GROUPED = re.compile(r"^(\s+)(\**\w+(?:\s*,\s*\**\w+)+)(\s*(?:\([^)]*\))?\s*:.*)$")
_NAMES_CONTINUED = re.compile(r"^\s+\**\w+(?:\s*,\s*\**\w+)*\s*,\s*$")


def _split_grouped_arguments(lines):
    out, section_indent, i = [], None, 0
    while i < len(lines):
        line = lines[i]
        header = _SECTION.match(line)
        if header:
            section_indent = len(header.group(1))
            out.append(line)
            i += 1
            continue
        indent = len(line) - len(line.lstrip())
        if section_indent is not None and line.strip() and indent <= section_indent:
            section_indent = None
        if section_indent is not None and _NAMES_CONTINUED.match(line) and i + 1 < len(lines):
            # A list of grouped names wrapped onto the next line: join the two lines.
            lines = [*lines[:i], line.rstrip() + " " + lines[i + 1].strip(), *lines[i + 2 :]]
            continue
        grouped = _GROUPED.match(line) if section_indent is not None else None
        if grouped and len(grouped.group(1)) > section_indent:
            entry_indent = len(grouped.group(1))
            continuation = []
            i += 1
            while i < len(lines) and (
                not lines[i].strip() or len(lines[i]) - len(lines[i].lstrip()) > entry_indent
            ):
                continuation.append(lines[i])
                i += 1
            while continuation and not continuation[-1].strip():
                i -= 1
                continuation.pop()
            for name in grouped.group(2).split(","):
                out.append(grouped.group(1) + name.strip() + grouped.group(3))
                out.extend(continuation)
            continue
        out.append(line)
        i += 1
    return out


def _fence_doctests(lines):
    out, i, in_fence = [], 0, False
    while i < len(lines):
        line = lines[i]
        if line.lstrip().startswith("```"):
            in_fence = not in_fence
        elif not in_fence and line.lstrip().startswith(">>>"):
            indent = line[: len(line) - len(line.lstrip())]
            block = []
            while i < len(lines) and lines[i].strip() and lines[i].startswith(indent):
                block.append(lines[i])
                i += 1
            out.append(f"{indent}```pycon")
            out.extend(block)
            out.append(f"{indent}```")
            continue
        out.append(line)
        i += 1
    return out


class PackageDocstrings(griffe.Extension):
    """Rewrites each docstring's text before griffe parses it (see the module docstring)."""

    def on_instance(self, *, obj, **kwargs):
        docstring = obj.docstring
        if docstring is None or isinstance(obj, griffe.Alias):
            return
        lines = docstring.value.split("\n")
        new = _fence_doctests(_split_grouped_arguments(lines))
        if new != lines:
            docstring.value = "\n".join(new)
