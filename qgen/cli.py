"""The ``qgen`` command line: check, show and run models.

Every bad input (a model file, an option value, an input file) ends with a message on stderr
and exit status 2, never a traceback. click itself reports unknown options and missing files
the same way.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import click

from qgen.errors import Code, QgenError

_DURATION = re.compile(r"\s*((?:\d+\.\d*|\.\d+|\d+)(?:[eE][-+]?\d+)?)\s*(s|ms|us)\s*")
_TIME_UNITS = {"s": 1000.0, "ms": 1.0, "us": 1e-3}

model_argument = click.argument("model", type=click.Path(exists=True, dir_okay=False, path_type=Path))
set_option = click.option("--set", "overrides", multiple=True, metavar="NAME=VALUE",
                          help="Override a 'let' constant of the network, e.g. --set N=10000.")


class Command(click.Group):
    """Turns a QgenError anywhere below into a message and exit status 2."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except QgenError as err:
            click.echo(err.format(), err=True)
            sys.exit(2)


@click.group(cls=Command, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(version=__import__("qgen").__version__)
def main() -> None:
    """qgen: compile spiking-network models (.snn) to simulation kernels."""


def _count(items, noun: str) -> str:
    return f"{len(items)} {noun}{'' if len(items) == 1 else 's'}"


def parse_overrides(items: tuple[str, ...]) -> dict[str, str]:
    result = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name.strip() or not value.strip():
            raise QgenError(Code.BAD_OPTION, f"--set {item!r}: expected NAME=VALUE", hint="e.g. --set N=10000")
        result[name.strip()] = value.strip()
    return result


def parse_duration(text: str) -> float:
    match = _DURATION.fullmatch(text)
    if not match:
        raise QgenError(Code.BAD_OPTION, f"--duration {text!r}: expected a time such as 200ms or 1.5s",
                        hint="units: s, ms, us")
    value = float(match.group(1)) * _TIME_UNITS[match.group(2)]
    if value <= 0:
        raise QgenError(Code.BAD_OPTION, f"--duration {text!r}: the duration must be positive")
    return value


def compile_model(path: Path, overrides: tuple[str, ...]):
    from qgen.pipeline import compile_model

    return compile_model(path, parse_overrides(overrides))


@main.command()
@model_argument
@set_option
def check(model: Path, overrides: tuple[str, ...]) -> None:
    """Parse and check MODEL; report every error with file:line:column."""
    compiled = compile_model(model, overrides)
    net = compiled.network
    what = (f"network {net.name}: {_count(net.populations, 'population')}, {_count(net.projections, 'projection')}"
            if net else f"{_count(compiled.neurons, 'neuron kind')}, no network")
    click.echo(f"{model}: ok ({what})")


precision_option = click.option("--float32/--float64", "float32", default=False,
                                show_default=True, help="Precision of states, weights and parameters.")
out_option = click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path),
                          default=Path("generated"), show_default=True, help="Folder of the builds.")
build_dir_option = click.option("--build-dir", "out_dir", type=click.Path(file_okay=False, path_type=Path),
                                default=Path("generated"), show_default=True, help="Folder of the builds.")


@main.command()
@model_argument
@click.option("--target", type=click.Choice(["c", "cuda", "jax"]), default="c", show_default=True,
              help="What to generate.")
@out_option
@precision_option
@set_option
@click.option("--export", "export", type=click.Choice(["stablehlo"]),
              help="With --target jax: also serialize the forward function and its VJP (jax.export).")
@click.option("--duration", default="100ms", show_default=True, help="With --export: the simulated time.")
@click.option("--batch", default=1, show_default=True, help="With --export: trials per call.")
@click.option("--input-spikes", default=64, show_default=True, help="With --export: input spikes per trial and population.")
def build(model: Path, target: str, out_dir: Path, float32: bool, overrides: tuple[str, ...], export: str | None,
          duration: str, batch: int, input_spikes: int) -> None:
    """Generate and compile MODEL (nothing is redone when the model and qgen are unchanged)."""
    import qgen

    loaded = qgen.load(model, target, precision="float32" if float32 else "float64",
                       overrides=parse_overrides(overrides), out=out_dir, runtime=False)
    folder = loaded.build.folder
    files = {"jax": "model.py, manifest.json", "cuda": "model.cu, model.cubin, manifest.json"}.get(
        target, "model.c, model.h, manifest.json")
    click.echo(f"{loaded.name}: {target} build in {folder}/ ({files})")
    if export:
        if target != "jax":
            raise QgenError(Code.BAD_OPTION, "--export stablehlo needs --target jax")
        from qgen.targets.jax import export_stablehlo

        loaded = qgen.load(model, target, precision="float32" if float32 else "float64",
                           overrides=parse_overrides(overrides), out=out_dir)
        written = export_stablehlo(loaded.simulator(batch=batch), parse_duration(duration), folder,
                                   input_spikes=input_spikes)
        click.echo(f"{loaded.name}: StableHLO in {folder}/ ({', '.join(p.name for p in written)})")


@main.command()
@model_argument
@click.option("--ir", "show_ir", is_flag=True, help="Print the intermediate representation.")
@click.option("--target", type=click.Choice(["c", "cuda", "jax"]), help="Print the generated code of this target.")
@click.option("--kernel", type=click.Choice(["forward"]), default="forward", show_default=True,
              help="Which kernel to print (with --target).")
@out_option
@precision_option
@set_option
def show(model: Path, show_ir: bool, target: str | None, kernel: str, out_dir: Path, float32: bool,
         overrides: tuple[str, ...]) -> None:
    """Show what qgen makes of MODEL: its IR, or the generated kernels."""
    from qgen.analysis import analyse
    from qgen.ir.printer import format_model

    if target is not None:
        import qgen

        loaded = qgen.load(model, target, precision="float32" if float32 else "float64",
                           overrides=parse_overrides(overrides), out=out_dir, runtime=False)
        source = {"jax": "model.py", "cuda": "model.cu"}.get(target, "model.c")
        click.echo((loaded.build.folder / source).read_text(), nl=False)
        return
    if not show_ir:
        raise QgenError(Code.BAD_OPTION, "say what to show", hint="qgen show MODEL --ir, or --target c")
    compiled = compile_model(model, overrides)
    text = format_model(compiled)
    for kind in compiled.neurons:
        a = analyse(kind)
        dynamics = "linear (affine): exact propagators" if a.linear else \
            f"non-linear in d{a.nonlinearity.variable}/dt: numerical integration (grid timing only)"
        text += f"\nanalysis {kind.name}: {dynamics}; events {'sum' if a.additive_event else 'apply one by one'}"
    click.echo(text.rstrip())


@main.command()
@model_argument
@click.option("--target", type=click.Choice(["c", "cuda", "jax", "reference"]), default="c", show_default=True,
              help="Where to simulate: the generated C kernels, the generated CUDA kernels (an NVIDIA GPU), "
                   "the generated JAX module, or the NumPy reference simulator.")
@click.option("--duration", default="200ms", show_default=True, help="Simulated time, e.g. 500ms or 1s.")
@click.option("--input", "input_path", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Input spikes: an .npz with <population>.times, .ids and optionally .trials.")
@click.option("--out", "out_path", type=click.Path(dir_okay=False, path_type=Path), help="Write the results (.npz).")
@click.option("--plot", "plot_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Write a raster and trace plot (.png).")
@click.option("--seed", type=click.IntRange(min=0), help="Seed for connectivity and initial values.")
@click.option("--strict", is_flag=True, help="Fail on the first dropped queue event.")
@click.option("--threads", type=click.IntRange(min=1),
              help="C target: threads (one trial: the threads share its neurons; several: one trial per "
                   "thread). Default: one for one trial, OpenMP's default for several.")
@build_dir_option
@precision_option
@set_option
def run(model: Path, target: str, duration: str, input_path: Path | None, out_path: Path | None,
        plot_path: Path | None, seed: int | None, strict: bool, threads: int | None, out_dir: Path, float32: bool,
        overrides: tuple[str, ...]) -> None:
    """Simulate MODEL and report spikes, rates and any lost events."""
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    import qgen
    from qgen.runtime.inputs import load_inputs

    errors = Console(stderr=True)
    length = parse_duration(duration)
    inputs, batch = load_inputs(input_path) if input_path else (None, 1)
    loaded = qgen.load(model, target, precision="float32" if float32 else "float64",
                       overrides=parse_overrides(overrides), out=out_dir)
    compiled = loaded.model
    if threads is not None and target != "c":
        raise QgenError(Code.BAD_OPTION, f"--threads applies to the c target, not to {target}")
    options = {"threads": threads} if threads is not None else {}
    simulator = loaded.simulator(batch, seed=seed, strict=strict, **options)
    data = simulator.data
    with Progress(TextColumn("[progress.description]{task.description}"), BarColumn(), TimeRemainingColumn(),
                  console=errors, transient=True, disable=not errors.is_terminal) as bar:
        task = bar.add_task(f"simulating {compiled.name}", total=None)
        result = simulator.run(inputs, length, progress=lambda done, total: bar.update(task, completed=done,
                                                                                        total=total))
    report(result, data)
    if out_path:
        result.save(out_path)
        click.echo(f"results written to {out_path}")
    if plot_path:
        if not result.spikes and not result.traces:
            raise QgenError(Code.BAD_OPTION, "--plot: the model records nothing",
                            hint="add e.g. 'record hid.spikes' to the network")
        from qgen.runtime.plots import plot_run

        plot_run(result, plot_path, title=f"{compiled.name}, {target}, trial 0")
        click.echo(f"plot written to {plot_path}")


def report(result, data) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{result.duration:g} ms simulated, dt = {result.dt:g} ms", title_justify="left")
    for column in ("population", "neurons", "spikes", "rate (Hz)"):
        table.add_column(column, justify="left" if column == "population" else "right")
    for name, record in result.spikes.items():
        total = record.total
        rate = total.sum() / (total.size * result.duration / 1000.0)
        table.add_row(name, str(total.shape[1]), str(int(total.sum())), f"{rate:.2f}")
    if result.spikes:
        Console().print(table)
    for line in result.warnings():
        click.echo(f"warning: {line}", err=True)


if __name__ == "__main__":
    main()
