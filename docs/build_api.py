"""Writes docs/api.md from the public names' signatures and docstrings.

    KERAS_BACKEND=jax python docs/build_api.py

The public names are the ones `keras_lottery/__init__.py` exports: its
`_NAMES` (grouped here by subpackage) and the masked layers it imports. Its
module attributes (`_MODULES`, and the `layers`, `metrics` and `schedules`
modules it imports) get one line each; the few whose functions users call
directly are documented in full, with the names listed in `DOCUMENTED`.
Nothing else is read, so an internal module never reaches the reference.
"""

import inspect
import pathlib
import re
import sys

import keras_lottery

# A title per subpackage of `_NAMES`, in the order the sections appear. A new
# subpackage in `_NAMES` stops the build until it has a title here.
SECTIONS = {
    "layers": "Masked layers",
    "masking": "Masks on a model",
    "pruning": "Which weights to prune",
    "structured": "Structured tickets",
    "sparse": "Sparse training in one fit",
    "search": "The ticket search",
    "runtime": "Devices and compilation",
    "sweeps": "Sweeps: many searches, here, on Ray or on Slurm",
}

# Module attributes users call directly: `kl.<module>.<name>`. None: every
# public class and function the module itself defines.
DOCUMENTED = {
    "models": None,
    "datasets": None,
    "text": ["text_splits", "text_file", "jargon", "tiny_shakespeare", "read_text",
             "Vocabulary", "TextSplits"],
    "metrics": ["BitsPerCharacter", "Perplexity"],
    "schedules": ["LinearWarmup", "step_decay"],
    "presets": ["PRESETS", "get"],
    "plots": ["accuracy_curves", "early_stop", "stability_paths", "stability_barriers",
              "save_figures"],
    "criteria": ["CRITERIA", "Criterion"],
    "state": ["snapshot", "restore"],
    "results": ["RECORD_KINDS"],
    "sweeps": ["Local", "Ray", "Slurm", "Member", "member_directories"],
}

# Imported with the package (a saved masked model names them), not through `_MODULES`.
EAGER_MODULES = ("layers", "metrics", "schedules")


# Dotted paths the reference could not spell publicly, to name when it is written.
UNRESOLVED = set()


def public_path(match) -> str:
    """`keras_lottery.a.b.name` as a reader reaches it: `kl.name` for a public
    name, else through the longest module the package exposes (`kl.text.x`)."""
    path = match.group(0)
    parts = path.split(".")
    if parts[-1] in keras_lottery._WHERE or parts[-1].startswith("Masked"):
        return f"kl.{parts[-1]}"
    aliases = {f"keras_lottery.{name}": name for name in EAGER_MODULES}
    aliases.update({module: name for name, module in keras_lottery._MODULES.items()})
    for end in range(len(parts), 1, -1):
        module = ".".join(parts[:end])
        if module in aliases:
            return ".".join(["kl", aliases[module], *parts[end:]])
    UNRESOLVED.add(path)
    return path


def first_paragraph(obj) -> str:
    text = (inspect.getdoc(obj) or "").split("\n\n")[0]
    return re.sub(r"\bkeras_lottery(?:\.\w+)+", public_path, text)


def signature_of(obj) -> str:
    try:
        text = str(inspect.signature(obj))
    except (TypeError, ValueError):
        return ""
    # Default functions print with their address, which changes every run; a
    # type reads as its bare name, not as the internal module that defines it.
    text = re.sub(r" at 0x[0-9a-f]+", "", text)
    if inspect.isclass(obj):
        text = text.removesuffix(" -> None")  # A dataclass's generated __init__.
    return re.sub(r"\b(?:keras_lottery|collections\.abc|typing)(?:\.\w+)*\.(\w+)", r"\1", text)


def entry(title, obj, documented):
    """The Markdown of one name: its signature, its docstring's first paragraph
    and, for a class, a line per public method."""
    if id(obj) in documented:
        return f"### `{title}`\n\nThe same as `{documented[id(obj)]}`.\n"
    if isinstance(obj, dict):
        return f"### `{title}`\n\n`{', '.join(sorted(obj))}`\n"
    if isinstance(obj, (tuple, list, frozenset, set, str, int, float)):
        return f"### `{title}`\n\n`{obj!r}`\n"
    documented[id(obj)] = title
    lines = [f"### `{title}{signature_of(obj)}`", "", first_paragraph(obj), ""]
    if inspect.isclass(obj):
        for method, member in vars(obj).items():
            if not method.startswith("_") and callable(member) and getattr(member, "__doc__", None):
                summary = first_paragraph(member).replace("\n", " ")
                lines.append(f"- `{method}`: {summary}")
        lines.append("")
    return "\n".join(lines)


def public_sections():
    """`{title: [public name, ...]}` from `keras_lottery`'s exports."""
    sections = {title: [] for title in SECTIONS.values()}
    # The protocol first, then the twins.
    sections[SECTIONS["layers"]] = sorted(
        (n for n in keras_lottery.__all__ if n.startswith("Masked")),
        key=lambda n: (n != "MaskedLayer", n))
    for module, names in keras_lottery._NAMES.items():
        subpackage = module.split(".")[1]
        if subpackage not in SECTIONS:
            raise SystemExit(f"build_api.py: give the subpackage {subpackage!r} of {module} a "
                             "title in SECTIONS")
        sections[SECTIONS[subpackage]] += names
    return sections


def module_names(module, names):
    if names is not None:
        return names
    return [n for n in getattr(module, "__all__", dir(module)) if not n.startswith("_")
            and getattr(getattr(module, n), "__module__", "").startswith(module.__name__)]


def main():
    documented = {}
    parts = ["# API reference", "",
             "Generated by `python docs/build_api.py` from the docstrings (the first paragraph of "
             "each; the full text is in the source). Every name here is reached from the package, "
             "`import keras_lottery as kl`: `kl.prunable`, `kl.text.text_file`. Other modules are "
             "internal and may change between versions.", ""]
    for title, names in public_sections().items():
        parts += [f"## {title}", ""]
        for name in names:
            parts.append(entry(f"kl.{name}", getattr(keras_lottery, name), documented))

    modules = sorted({*keras_lottery._MODULES, *EAGER_MODULES})
    missing = [name for name in DOCUMENTED if name not in modules]
    if missing:
        raise SystemExit(f"build_api.py: DOCUMENTED names modules the package does not "
                         f"export: {missing}")
    parts += ["## Modules", "",
              "Modules reachable as attributes of the package, most kept for code written "
              "before the package was grouped into subpackages; the ones documented below "
              "hold functions to call directly.", ""]
    for name in modules:
        summary = first_paragraph(getattr(keras_lottery, name)).replace("\n", " ")
        more = f" [Below](#kl{name})." if name in DOCUMENTED else ""
        parts.append(f"- `kl.{name}`: {summary}{more}")
    parts.append("")
    for name, names in DOCUMENTED.items():
        module = getattr(keras_lottery, name)
        parts += [f"## `kl.{name}`", "", first_paragraph(module), ""]
        for member in module_names(module, names):
            parts.append(entry(f"kl.{name}.{member}", getattr(module, member), documented))

    if UNRESOLVED:
        print("build_api.py: internal paths in docstrings, with no public spelling: "
              + ", ".join(sorted(UNRESOLVED)), file=sys.stderr)
    path = pathlib.Path(__file__).with_name("api.md")
    path.write_text("\n".join(parts).rstrip() + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    sys.exit(main())
