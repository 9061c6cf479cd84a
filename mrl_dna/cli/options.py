"""Parsing shared by the CLI files: comma-separated number lists (typer has no list-in-one-option type), the
options every command spells the same way, and --config FILE (option values read from a TOML file)."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path

import typer

from mrl_dna import runtime
from mrl_dna.device import check_device
from mrl_dna.errors import ConfigError, InputError, OptionError
from mrl_dna.store.writer import check_hdf5_name
from mrl_dna.vectors import check_cosine


def number_list(text: str | None, option: str, kind: Callable[[str], float] = int, example: str = "8,16,64"):
    """'8,16,64' -> (8, 16, 64); None stays None; a bad or empty list is a ConfigError naming the option."""
    if text is None:
        return None
    try:
        vals = tuple(kind(x) for x in text.split(",") if x.strip())
    except ValueError:
        what = "integers" if kind is int else "numbers"
        raise ConfigError(f"{option} {text!r} is not a comma-separated list of {what}; e.g. {option} {example}") from None
    if not vals:
        raise ConfigError(f"{option} is empty; give at least one value, e.g. {option} {example}")
    return vals


# ---- the grammar every command shares (tests/test_cli_grammar.py checks it over all commands) ------------
# -f/--force: every command that writes (and no other option is -f); -o/--output: every command that writes a
# file; --threads and --device: every command that computes with torch (checked while options are parsed,
# before any work); -k: hits only; -q/--quiet everywhere; a missing input file is exit 1 with one line.


def force_option(what: str = "an existing OUTPUT"):
    return typer.Option(False, "-f", "--force", help=f"Replace {what} (without it, an existing output is an error).")


def quiet_option(help: str = "No progress or summary on stderr (warnings and errors still print)."):
    return typer.Option(False, "-q", "--quiet", help=help)


def threads_option(what: str = "CPU threads (0 = auto: the cores other processes leave free, measured at the "
                   "start; oversubscribed threads run several times slower"):
    return typer.Option(0, "--threads", min=0, help=f"{what}; more than the CPUs is clamped to them, with a warning).")


def device_option(help: str = "auto | cpu | cuda | cuda:N (auto: a GPU when torch sees one, else the CPU; bf16 "
                  "autocast on CUDA)."):
    return typer.Option("auto", "--device", callback=_checked_device, help=help)


def model_option(help: str):
    """-m/--model DIR: the model a command embeds with (embed, search's FASTA queries, eval)."""
    return typer.Option(None, "-m", "--model", help=help)


def batch_tokens_option(help: str = "Bases per model batch [default: embed's]."):
    return typer.Option(None, "--batch-tokens", min=1, help=help)


def dim_option(help: str = "Matryoshka prefix width compared (re-normalised). Default: the full width.", default: int | None = None):
    """--dim K: the Matryoshka prefix a command reads (dist, cluster, export, search, index)."""
    return typer.Option(default, "--dim", min=1, help=help)


def min_sim_option(help: str):
    """--min-sim S: a cosine cut-off (dist, cluster), -1..1, checked while the options are parsed (cosine_cutoff)."""
    return typer.Option(None, "--min-sim", callback=cosine_cutoff("--min-sim"), help=help)


def text_output_option(help: str = "Write here instead of stdout (gzip when the name ends in .gz; written as NAME.partial "
                       "until complete)."):
    """-o/--output of a text result (dist, cluster, eval's report), written through store.textout."""
    return typer.Option(None, "-o", "--output", help=help)


def no_header_option(header: str, where: str = ""):
    """--no-header of a command whose TSV starts with a '#...' header line (`header`, e.g. '#query...')."""
    return typer.Option(False, "--no-header", help=f"Omit the '{header}' header line{where}.")


def embedding_file_argument(metavar: str, default=..., help: str = "An embedding file (mrl-dna embed, merge)."):
    """An embedding file read as a whole (dist, cluster): it must exist (exit 1 with one line otherwise)."""
    return typer.Argument(default, callback=existing(what="embedding file"), metavar=metavar, help=help)


def blas_threads_option():
    """--threads of the commands that compute with numpy (dist, cluster)."""
    return threads_option("BLAS threads for the products (0 = all cores; on a machine shared with other jobs give 1 "
                          "or 2: oversubscribed threads run several times slower")


def products_device_option():
    """--device of the commands that compute with numpy, and with torch only on a GPU (dist, cluster)."""
    return device_option("auto | cpu | cuda | cuda:N: where the products run (auto: the CPU, in numpy without "
                         "loading torch, unless an NVIDIA GPU is visible).")


def refuse_options(why: str, **given: bool) -> None:
    """OptionError (exit 2) naming the first option given that does not apply: refuse_options("applies to
    --level windows only", min_ani=True) -> '--min-ani applies to --level windows only'."""
    for name, on in given.items():
        if on:
            raise OptionError(f"--{name.replace('_', '-')} {why}")


def parsed_by(parse: Callable):
    """A typer callback: the option's value through `parse`, whose ConfigError becomes click's usage error (exit
    2 with the usage line: a bad option value, README's exit codes)."""

    def check(value):
        try:
            return parse(value)
        except ConfigError as e:
            raise typer.BadParameter(str(e)) from None

    return check


def _checked_device(value: str) -> str:
    return check_device(value) if value is not None else value


def set_threads(threads: int, auto: bool = True) -> None:
    """--threads N: torch's intra-op threads (and FAISS's, when it is loaded); 0 = auto (runtime.set_threads:
    the cores not busy with other processes), or with auto=False torch's default (all cores)."""
    if threads or auto:
        runtime.set_threads(threads)


def hdf5_output(value):
    """A typer callback for -o of an HDF5 embedding file (embed, merge): a .gz name is refused while the options
    are parsed (exit 2), before a model is loaded (store.check_hdf5_name)."""
    if value is not None:
        check_hdf5_name(value)
    return value


def cosine_cutoff(option: str):
    """A typer callback for a cosine cut-off (search --min-score, dist and cluster --min-sim): -1..1, else one
    OptionError line (exit 2) while the options are parsed (vectors.check_cosine, which the library runs too)."""
    return lambda value: check_cosine(value, option)


def existing(kind: str = "file", what: str = "input"):
    """A typer callback: every path given must exist (a file, or a directory for kind='dir'), else one
    InputError line (exit 1, as every missing input in every command). '-' (stdin) passes."""

    def check(value):
        if value is None:
            return value
        for p in value if isinstance(value, (list, tuple)) else [value]:
            path = Path(p)
            if str(p) == "-":
                continue
            if not path.exists():
                raise InputError(f"{what} {p}: no such {'directory' if kind == 'dir' else 'file'}; check the path")
            if kind == "file" and path.is_dir():
                raise InputError(f"{what} {p} is a directory; give a file")
            if kind == "dir" and not path.is_dir():
                raise InputError(f"{what} {p} is not a directory; give a directory")
        return value

    return check


# ---- --config FILE: option values from a TOML file ---------------------------------------------------------
# A key is an option's long name without its dashes, spelled as on the command line (batch-size = 768,
# kmer-only = true); an option that takes a comma-separated list takes a TOML array too (dims = [8, 16, 32]),
# a repeatable one an array (val-genomes = ["a.fa", "b.fa"]). Paths are relative to the current directory, as on
# the command line. Options given on the command line override the file. An unknown key, a value of the wrong
# type or out of range: one OptionError line naming the file and the key (exit 2).
CONFIG_META = "mrl_dna.config"  # ctx.meta key: (path as given, text) of the file --config read


def config_option(help: str):
    """--config FILE, read before every other option (is_eager) into the command's defaults (ctx.default_map)."""
    return typer.Option(None, "--config", metavar="FILE", is_eager=True, callback=_config_callback, help=help)


def config_file(ctx: typer.Context) -> tuple[str, str] | None:
    """(path as given, text) of the file --config read, for the record (train's model card); None without it."""
    return ctx.meta.get(CONFIG_META)


def _config_callback(ctx: typer.Context, param: typer.CallbackParam, value):
    if value is None or ctx.resilient_parsing:
        return value
    text, defaults = read_config(Path(value), ctx)
    ctx.default_map = {**(ctx.default_map or {}), **defaults}  # below the command line, above the built-in defaults
    ctx.meta[CONFIG_META] = (str(value), text)
    return value


def read_config(path: Path, ctx: typer.Context) -> tuple[str, dict[str, object]]:
    """The text of a --config file and its values keyed by parameter name, each checked as the command line's
    would be (type, range, choices), so a bad one is one line naming the key before anything runs."""
    if not path.is_file():
        raise InputError(f"--config {path}: no such file; check the path")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise OptionError(f"--config {path} is not UTF-8 text ({e.reason} at byte {e.start}); save it as UTF-8") from None
    tomllib = _tomllib()
    try:
        table = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise OptionError(f"--config {path} is not valid TOML: {e}") from None
    by_key = {o[2:]: p for p in ctx.command.params if p.param_type_name == "option" and not p.hidden
              for o in p.opts if o.startswith("--") and o != "--config"}
    defaults = {}
    for key, value in table.items():
        param = by_key.get(key)
        if param is None:
            dashed = key.replace("_", "-")
            example = next((k for k in by_key if "-" in k), next(iter(by_key)))
            hint = (f"write it as on the command line: {dashed}" if dashed in by_key else
                    f"keys are the command's long options without their dashes, e.g. {example}")
            raise OptionError(f"--config {path}: unknown key {key!r}; {hint}")
        defaults[param.name] = _config_value(param, key, value, path, ctx)
    return text, defaults


def _config_value(param, key: str, value, path: Path, ctx: typer.Context):
    """One --config value as the option's parser takes it (a TOML array joined by commas for a list option), or
    OptionError naming the key."""
    def bad(why: str) -> OptionError:
        return OptionError(f"--config {path}: {key} = {json.dumps(value, default=str)}: {why}")

    flag = bool(getattr(param, "is_flag", False))
    if isinstance(value, dict):
        raise bad("a table; give the option's value")
    if param.multiple or param.nargs == -1:
        value = list(value) if isinstance(value, list) else [value]
    elif isinstance(value, list):
        if _annotation(param) is not str or any(isinstance(v, (list, dict)) for v in value):
            raise bad("the option takes one value")
        value = ",".join(str(v) for v in value)  # --dims 8,16,32
    if flag != isinstance(value, bool):
        raise bad("give true or false" if flag else "true/false is for options without a value")
    try:  # the command line's checks (type, range, choices); the option's callback runs when it is used
        coerce = getattr(param, "get_runtime_param", None)
        coerce().coerce(value, param=param, ctx=ctx) if coerce else param.type_cast_value(ctx, value)
    except typer.BadParameter as e:
        raise bad(e.message) from None
    return value


def _annotation(param):
    """The Python type typer built the option from (typer >= 0.16 records it; older typer: click's type)."""
    desc = getattr(param, "type_descriptor", None)
    return desc.annotation if desc is not None else {"text": str}.get(getattr(param.type, "name", ""))


def _tomllib():
    if sys.version_info >= (3, 11):
        import tomllib  # noqa: PLC0415 (needed by --config only)
    else:
        import tomli as tomllib  # noqa: PLC0415 (the dependency for Python 3.10)
    return tomllib
